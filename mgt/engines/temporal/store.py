"""Large outputs ⇄ references: a value written once to a content-addressed directory, and
the small `{"$mgt_stored": SHA256, "bytes": N}` that stands for it in the workflow history.

A reference names its content by hash, so reading it back is deterministic: the
workflow may resolve one while it replays (cached; a changed file is refused), and
workers resolve the references of earlier outputs before a step's bindings read them.
The directory must be the same for every worker and for the workflow (`[temporal] store`).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = ["REF_KEY", "StoredOutputs", "is_ref", "put", "resolve"]

REF_KEY = "$mgt_stored"
_cache: dict[str, Any] = {}
_lock = threading.Lock()


def is_ref(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get(REF_KEY), str) and len(value) == 2


def _path(store: Path, digest: str) -> Path:
    return store / digest[:2] / f"{digest}.json"


def put(store: Path, value: Any) -> dict[str, Any]:
    """Write `value` (JSON) to the store; its reference."""
    from mgt.runtime.journal import atomic_write_text

    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    data = text.encode("utf-8")
    digest = hashlib.sha256(data).hexdigest()
    path = _path(store, digest)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text)
    return {REF_KEY: digest, "bytes": len(data)}


def resolve(store: str | Path | None, value: Any) -> Any:
    """The value a reference stands for (anything else as it is)."""
    if not is_ref(value):
        return value
    digest = value[REF_KEY]
    with _lock:
        if digest in _cache:
            return _cache[digest]
    if store is None:
        raise RuntimeError(f"an output is stored ({digest[:12]}) but no [temporal] store is "
                           "configured here")
    path = _path(Path(store), digest)
    data = path.read_bytes()  # missing: the workflow task fails and is retried
    if hashlib.sha256(data).hexdigest() != digest:
        raise RuntimeError(f"stored output {path} does not match its hash")
    found = json.loads(data)
    with _lock:
        _cache[digest] = found
    return found


class StoredOutputs(Mapping[str, Any]):
    """A run's outputs by state, references resolved as they are read (what guards see)."""

    def __init__(self, outputs: Mapping[str, Any], store: str | None) -> None:
        self._outputs = outputs
        self._store = store

    def __getitem__(self, name: str) -> Any:
        return resolve(self._store, self._outputs[name])

    def __iter__(self) -> Iterator[str]:
        return iter(self._outputs)

    def __len__(self) -> int:
        return len(self._outputs)

    def __contains__(self, name: object) -> bool:
        return name in self._outputs
