"""Terminal output: one stderr console for progress, quiet when stderr is not a terminal."""

from __future__ import annotations

import sys
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["err_console", "out_console", "stderr_is_tty"]


def stderr_is_tty() -> bool:
    return sys.stderr.isatty()


@cache
def err_console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


@cache
def out_console() -> Console:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)
