"""`mgt serve`: the `[[schedule]]` tables of `mgt.toml` → runs started on time, one at a time each.

    config.py   mgt.toml → validated `Schedule`s (one-line `mgt.toml:LINE: ...` errors)
    timing.py   a schedule + its last tick + now → the tick that is due, if any
    state.py    RUNS_DIR/.serve/state.json (last tick, run in flight) and the serve lock
    runner.py   the loop: start, watch, interrupt and resume `mgt exec` child processes
    cli.py      `mgt serve` arguments → the loop → an exit code
"""
