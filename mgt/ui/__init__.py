"""`mgt ui`: a read-only web view of runs, PatternReports and local PR records (Starlette)."""
