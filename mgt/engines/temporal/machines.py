"""A machine file's path + the sha256 a run pinned → its compiled `Machine` (cached).

Workers and workflows load the same pinned file: a copy whose hash differs is
refused with a non-retryable error rather than run as a different machine; so is
one whose definition files (polecats, formulas, schemas, the machines it runs)
differ from those the run pinned at its start.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from temporalio.exceptions import ApplicationError

from mgt.compile.model import Machine

__all__ = ["machine_for"]

_cache: dict[tuple[str, str], Machine] = {}
_lock = threading.Lock()


def machine_for(path: str, sha256: str, definitions: Mapping[str, str] | None = None
                ) -> Machine:
    """The machine at `path`, checked to be the one the run started with (and, given the
    run's pinned `definitions`, to have loaded the same definition files)."""
    key = (path, sha256)
    with _lock:
        machine = _cache.get(key)
        if machine is None:
            from mgt.compile import load_machine
            from mgt.errors import MgtError

            try:
                machine = load_machine(path)
            except MgtError as err:
                raise ApplicationError(f"cannot load machine {path}: {err}",
                                       non_retryable=True) from None
            if machine.source_hash != sha256:
                raise ApplicationError(
                    f"machine {path} changed since the run started (sha256 "
                    f"{machine.source_hash[:12]}, the run pinned {sha256[:12]})",
                    non_retryable=True)
            _cache[key] = machine
    if definitions is not None:
        for file, digest in sorted(definitions.items()):
            now = machine.definitions.get(file)
            if now != digest:
                what = "is not loaded here" if now is None else "differs here"
                raise ApplicationError(f"{file} {what} from the run's start (machine {path})",
                                       non_retryable=True)
        for file in sorted(set(machine.definitions) - set(definitions)):
            raise ApplicationError(f"{file} is loaded here but was not at the run's start "
                                   f"(machine {path})", non_retryable=True)
    return machine
