"""mgt test suite (mirrors the mgt package)."""
