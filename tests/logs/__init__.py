"""Tests of mgt.logs: events, sources, the Loki client and `mgt logs`."""
