"""Checked AST → python-statemachine chart and the plain `Machine` model the runtime runs.

    load_machine(path) -> Machine     parse, check (CheckError on errors), lower
    lower_checked(check_result)       lower what a caller already checked
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mgt.compile.model import Machine

__all__ = ["load_machine", "lower_checked"]


def load_machine(path: str | os.PathLike[str]) -> Machine:
    """Check the .mgt file at `path` and lower it; raises CheckError with every diagnostic.

    Unreadable or unparsable files raise the checker's own MgtError (UsageError,
    ParseError). The returned Machine carries the loaded polecats, formulas and schemas.
    """
    from mgt.check import check_file

    return lower_checked(check_file(os.fspath(path)))


def lower_checked(result: Any) -> Machine:
    """Lower a `mgt.check.CheckResult` (raises CheckError when it holds errors)."""
    from mgt.compile.lower import lower_checked as _lower_checked

    return _lower_checked(result)
