"""Tests of mgt.compile: lowering, the chart, the graph."""
