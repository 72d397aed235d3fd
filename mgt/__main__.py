"""`python -m mgt` → the command line."""

from mgt.cli import main

raise SystemExit(main())
