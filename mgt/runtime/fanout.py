"""A fan-out state (or a state of branches) → its items; its finished items → one outcome.

The pure half of a fan-out, shared by the engines: the file journal's interpreter
runs the items on threads, the Temporal workflow as one activity each, and both
evaluate the list, apply the failure policy and join the results through these
functions, so a fan-out means the same on either.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mgt.compile.model import StateSpec
from mgt.runtime.events import ItemFinished
from mgt.runtime.outcome import Outcome

__all__ = ["FanOutItem", "Policy", "failures", "item_key", "items_of", "join", "policy_of"]


@dataclass(frozen=True)
class FanOutItem:
    """One item of a fan-out or one branch: its stable index, its key, the state it runs as
    and the names its bindings see (the item name)."""

    index: int
    key: str | None
    spec: StateSpec
    names: dict[str, Any]


@dataclass(frozen=True)
class Policy:
    """How many items may fail, whether the first failure past that cancels the rest, and
    how many items run at once (None: all)."""

    tolerate: int
    cancel_on_failure: bool
    max: int | None

    def stops(self, finished: Iterable[ItemFinished]) -> bool:
        """Whether the items finished so far stop the rest."""
        return self.cancel_on_failure and failures(finished) > self.tolerate


def policy_of(spec: StateSpec) -> Policy:
    fan = spec.fan_out
    if fan is not None:
        return Policy(fan.tolerate, fan.cancel_on_failure, fan.max)
    return Policy(spec.tolerate, spec.cancel_on_failure, None)


def items_of(spec: StateSpec, names: Mapping[str, Any]) -> list[FanOutItem] | Outcome:
    """The items of a fan-out (its list, evaluated over `names`: inputs, outputs, attempts)
    or the branches of a state; an error outcome when the list cannot be had."""
    from mgt.errors import ExprError
    from mgt.expr.evaluate import evaluate

    fan = spec.fan_out
    if fan is None:
        return [FanOutItem(i, name, branch, {}) for i, (name, branch)
                in enumerate(spec.branches)]
    env = dict(names)
    env["output"] = None
    try:
        items = evaluate(fan.items, env)
    except ExprError as err:
        return Outcome("error", error=f"the list of the fan-out: {err}", retryable=False)
    if not isinstance(items, list):
        return Outcome("error", error="the list of the fan-out is not a list but "
                       f"{type(items).__name__}", retryable=False)
    return [FanOutItem(i, item_key(v), spec, {fan.item: v}) for i, v in enumerate(items)]


def join(spec: StateSpec, items: list[FanOutItem],
         results: Mapping[int, ItemFinished]) -> Outcome:
    """The state's outcome from its items' results: `done` with the list of results (an
    object by branch name for branches) unless more items failed than it tolerates."""
    finished = [results[job.index] for job in items if job.index in results]
    output: Any
    if spec.fan_out is not None:
        output = [ev.result() for ev in finished]
    else:
        output = {ev.key: {k: v for k, v in ev.result().items() if k not in ("index", "key")}
                  for ev in finished}
    tolerate = policy_of(spec).tolerate
    failed = [ev for ev in finished if ev.outcome != "done"]
    if len(failed) <= tolerate:
        return Outcome("done", output=output)
    first = failed[0]
    detail = f": {first.error}" if first.error else ""
    what = "items" if spec.fan_out is not None else "branches"
    which = f"item {first.index}" if spec.fan_out is not None else f"branch '{first.key}'"
    return Outcome(
        "error", output=output,
        error=f"{len(failed)} of {len(items)} {what} failed (tolerated: {tolerate}); "
              f"first, {which} ({first.outcome}){detail}")


def failures(items: Iterable[ItemFinished]) -> int:
    return sum(1 for ev in items if ev.outcome != "done")


def item_key(value: Any) -> str | None:
    """An item's key, shown beside its index: a text or number item itself, or the `key`,
    `id` or `name` field of an object item."""
    if isinstance(value, str):
        return value[:200]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, dict):
        for field_name in ("key", "id", "name"):
            found = value.get(field_name)
            if isinstance(found, str | int) and not isinstance(found, bool):
                return str(found)[:200]
    return None
