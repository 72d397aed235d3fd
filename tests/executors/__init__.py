"""Tests of mgt.executors: process reaping, mapping tables, each executor (real CLI, real tmux)."""
