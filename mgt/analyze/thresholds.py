"""A polecat TOML file → the analyzer's `Thresholds` (its `[thresholds]` table).

The bundled default is the repository's `polecats/log-analyzer.toml`, found next
to the installed package (an install from the repository) or under the current
directory. The file is read by `mgt.defs.load_polecat`, so keys missing from a
polecat's table take the original file's values and keys of the wrong type are
a `DefinitionError` naming the file and key.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from mgt.errors import DefinitionError

__all__ = ["DEFAULTS", "Thresholds", "find_bundled", "from_polecat_thresholds", "load_thresholds"]

POLECAT_FILE = "log-analyzer.toml"


@dataclass(frozen=True)
class Thresholds:
    min_occurrences: int = 3
    latency_warning_ms: float = 2000
    latency_critical_ms: float = 5000
    error_rate_warning: float = 0.05
    error_rate_critical: float = 0.15
    source: str = "built-in defaults"
    #: failure targets besides the names holding "error" or "fail" (names or patterns)
    failure_nodes: tuple[str, ...] = ()

    def with_min_occurrences(self, value: int) -> Thresholds:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError("min_occurrences must be a positive integer")
        return replace(self, min_occurrences=value)

    def as_dict(self) -> dict[str, Any]:
        """The five thresholds (whole numbers as ints), without `source`."""
        out: dict[str, Any] = {}
        for key, value in asdict(self).items():
            if key in ("source", "failure_nodes"):
                continue
            if key.startswith("latency") and float(value).is_integer():
                value = int(value)
            out[key] = value
        return out


DEFAULTS = Thresholds()


def find_bundled(name: str, cwd: Path | None = None) -> Path | None:
    """`polecats/NAME`, `schemas/NAME`, … from the repository holding the package, else cwd."""
    here = Path(__file__).resolve()
    candidates = [here.parents[2] / name, (cwd or Path.cwd()) / name]
    for path in candidates:
        if path.is_file():
            return path
    return None


def load_thresholds(path: str | Path | None = None, cwd: Path | None = None) -> Thresholds:
    """Thresholds from the polecat at `path`, else the bundled log-analyzer, else `DEFAULTS`."""
    if path is None:
        bundled = find_bundled(f"polecats/{POLECAT_FILE}", cwd)
        if bundled is None:
            return DEFAULTS
        path = bundled
    from mgt.defs.files import display_path
    from mgt.defs.polecat import load_polecat

    polecat = load_polecat(path)
    if polecat.thresholds is None:
        shown = display_path(path)
        raise DefinitionError(f"{shown}: no [thresholds] table (is it the log-analyzer polecat?)")
    return from_polecat_thresholds(polecat.thresholds, display_path(path))


def from_polecat_thresholds(table: Any, source: str) -> Thresholds:
    """The analyzer's Thresholds from a loaded polecat's `[thresholds]` (mgt.defs model)."""
    return Thresholds(
        min_occurrences=int(table.min_occurrences),
        latency_warning_ms=table.latency_warning_ms,
        latency_critical_ms=table.latency_critical_ms,
        error_rate_warning=table.error_rate_warning,
        error_rate_critical=table.error_rate_critical,
        source=source,
        failure_nodes=tuple(getattr(table, "failure_nodes", None) or ()),
    )
