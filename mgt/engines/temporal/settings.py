"""`mgt.toml` `[temporal]` + flags + environment → where and how runs meet their workers.

    [temporal]
    address = "127.0.0.1:7233"     # else --temporal-address, else $MGT_TEMPORAL_ADDRESS
    namespace = "default"
    task_queue = "mgt"             # the shared queue every worker polls ($MGT_TEMPORAL_TASK_QUEUE)
    heartbeat_seconds = 30         # a silent worker's attempt is lost after this long
    claim_seconds = 60             # a run's worker that takes no work for this long is lost
    store = "/shared/mgt-store"    # large outputs go here (relative: to this mgt.toml)
    store_min_bytes = 65536        # an output this large or larger is stored
    spread = ["classify"]          # fan-outs whose items may run on any worker (or true: all)

A fan-out's items go to the run's worker by default, since they may read files that
earlier steps left in its run directory; the items of a state listed in `spread` are
self-contained (their bindings are all they read) and go to every worker.

A flag wins over the environment, which wins over the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mgt.errors import UsageError

if TYPE_CHECKING:
    from mgt.compile.model import Machine

__all__ = ["TemporalSettings", "load_settings"]

DEFAULT_ADDRESS = "127.0.0.1:7233"


@dataclass(frozen=True)
class TemporalSettings:
    address: str = DEFAULT_ADDRESS
    namespace: str = "default"
    task_queue: str = "mgt"
    heartbeat_seconds: float = 30.0
    claim_seconds: float = 60.0
    store: str | None = None
    store_min_bytes: int = 65536
    spread: bool | tuple[str, ...] = ()

    def spread_states(self, machine: Machine) -> list[str]:
        """The fan-out states of `machine` whose items go to any worker; a listed name that
        is a state of the machine but not a fan-out is a UsageError."""
        fans = [name for name, spec in machine.states.items()
                if spec.fan_out is not None or spec.branches]
        if self.spread is True:
            return fans
        if self.spread is False:
            return []
        for name in self.spread:
            if name in machine.states and name not in fans:
                raise UsageError(f"[temporal].spread: state '{name}' of machine "
                                 f"{machine.name} is not a fan-out")
        return [name for name in fans if name in self.spread]


_KEYS = {"address", "namespace", "task_queue", "heartbeat_seconds", "claim_seconds", "store",
         "store_min_bytes", "spread"}


def load_settings(start: Path | str | None = None, *, address: str | None = None,
                  task_queue: str | None = None) -> TemporalSettings:
    """The settings for a machine file or directory `start` (the nearest `mgt.toml` above)."""
    from mgt.runtime.project import find_project_file

    values: dict[str, Any] = {}
    here = Path(start or Path.cwd()).resolve()
    found = find_project_file(here if here.is_dir() else here.parent)
    if found is not None:
        from mgt.defs.files import read_toml_table

        table = read_toml_table(found, "temporal") or {}
        unknown = sorted(set(table) - _KEYS)
        if unknown:
            raise UsageError(f"{found}: [temporal]: unknown key '{unknown[0]}'")
        for key in ("address", "namespace", "task_queue"):
            value = table.get(key)
            if value is not None:
                if not isinstance(value, str) or not value.strip():
                    raise UsageError(f"{found}: [temporal].{key}: expected a non-empty string")
                values[key] = value
        store = table.get("store")
        if store is not None:
            if not isinstance(store, str) or not store.strip():
                raise UsageError(f"{found}: [temporal].store: expected a directory path")
            values["store"] = str((found.parent / store).resolve())
        size = table.get("store_min_bytes")
        if size is not None:
            if isinstance(size, bool) or not isinstance(size, int) or size < 0:
                raise UsageError(f"{found}: [temporal].store_min_bytes: expected a whole "
                                 "number of bytes")
            values["store_min_bytes"] = size
        spread = table.get("spread")
        if spread is not None:
            if isinstance(spread, bool):
                values["spread"] = spread
            elif isinstance(spread, list) and all(isinstance(v, str) and v for v in spread):
                values["spread"] = tuple(spread)
            else:
                raise UsageError(f"{found}: [temporal].spread: expected true, false or a list "
                                 "of state names")
        for key in ("heartbeat_seconds", "claim_seconds"):
            value = table.get(key)
            if value is not None:
                if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                    raise UsageError(f"{found}: [temporal].{key}: expected a positive number")
                values[key] = float(value)
    settings = TemporalSettings(**values)
    env = os.environ.get("MGT_TEMPORAL_ADDRESS")
    if env:
        settings = replace(settings, address=env)
    if os.environ.get("MGT_TEMPORAL_TASK_QUEUE"):
        settings = replace(settings, task_queue=os.environ["MGT_TEMPORAL_TASK_QUEUE"])
    if address:
        settings = replace(settings, address=address)
    if task_queue:
        settings = replace(settings, task_queue=task_queue)
    return settings
