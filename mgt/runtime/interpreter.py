"""A compiled `Machine` + typed inputs → a durable run that ends in a final (or resumes one).

    Interpreter.start()    new run: run_started, then the start state
    Interpreter.resume()   an existing run: rebuilt from events.jsonl, continues where it stopped

For each state: evaluate its `with` bindings, make attempts until an outcome is
not retried (`retry N on EVENT [with feedback] [backoff D]`), then send the
outcome to the state chart (`mgt.compile.chart.build_chart`), whose guarded
transitions, tried in declared order, decide the next state. Every step is an
fsync'd event in the journal before the next one starts:

    state_entered → attempt_started → attempt_finished [→ backoff → attempt_started ...]
                  → transition → state_entered ... → run_finished

so a run killed at any instant is rebuilt exactly: a finished attempt is never
re-run (its outcome and output are on disk), an attempt that started but did
not finish is run again under the next attempt number.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mgt.compile.model import IMPLICIT_FAIL, Machine, RetrySpec, StateSpec
from mgt.errors import ExecutorError, JournalError, MgtError, RunError, UsageError
from mgt.executors.base import ExecRequest, ExecResult, Executor
from mgt.runtime.context import GuardrailFailure, StepContext, StepFailure
from mgt.runtime.journal import RunJournal, atomic_write_json, atomic_write_text, jsonable
from mgt.runtime.outcome import Outcome, classify, feedback_text
from mgt.runtime.prompt import (
    InputProblem,
    Prompt,
    check_inputs,
    formula_prompt,
    polecat_prompt,
)

if TYPE_CHECKING:
    from mgt.compile.chart import GuardScope, MachineChart
    from mgt.expr.nodes import Expr

__all__ = [
    "DEFAULT_TIMEOUT_SECONDS",
    "Interpreter",
    "Interrupted",
    "RunResult",
    "Totals",
    "build_prompt",
]

#: Timeout for a step whose state and formula give none.
DEFAULT_TIMEOUT_SECONDS = 600.0
#: How often run.json is refreshed at most while states go by (see `_write_info`).
INFO_REFRESH_SECONDS = 0.25

EventHook = Callable[[dict[str, Any], "Totals"], None]
ExecutorFactory = Callable[[str], Executor]  # "model" | "command" → an executor


class Interrupted(RunError):
    """The run was stopped by SIGINT/SIGTERM; it is journaled as interrupted and resumable."""

    exit_code = 130


@dataclass
class Totals:
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0

    def add(self, result: ExecResult) -> None:
        self.cost_usd += result.cost_usd or 0.0
        self.input_tokens += result.input_tokens or 0
        self.output_tokens += result.output_tokens or 0


@dataclass
class RunResult:
    run_id: str
    run_dir: Path
    status: str  # succeeded | failed | interrupted
    final: str | None
    message: str | None
    path: list[str]
    outputs: dict[str, Any]
    totals: Totals

    @property
    def exit_code(self) -> int:
        return {"succeeded": 0, "failed": 1}.get(self.status, 130)

    def summary(self) -> dict[str, Any]:
        """The `mgt exec --json` object (DESIGN §4)."""
        return {
            "run_id": self.run_id,
            "status": self.status,
            "final": self.final,
            "path": self.path,
            "outputs": jsonable(self.outputs),
            "cost_usd": round(self.totals.cost_usd, 6),
            "tokens": {"input": self.totals.input_tokens, "output": self.totals.output_tokens},
        }


@dataclass
class _Visit:
    """The attempts of the current visit to a state (a state may be entered more than once)."""

    retries_used: dict[int, int] = field(default_factory=dict)  # RetrySpec index → retries taken
    pending: Outcome | None = None  # the last finished attempt's outcome, not yet acted on
    pending_attempt: int = 0  # its attempt number
    feedback: str | None = None  # for the next attempt (kept if that attempt is cut short)
    backoff_since: float | None = None  # epoch seconds a journaled backoff began (on resume)


class Interpreter:
    """Runs one machine; holds the journal lock for the run's whole life in this process."""

    def __init__(
        self,
        machine: Machine,
        journal: RunJournal,
        inputs: Mapping[str, Any],
        *,
        executors: ExecutorFactory | None = None,
        budget_usd: float | None = None,
        cwd: Path | None = None,
        on_event: EventHook | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        from mgt.compile.chart import GuardScope, build_chart

        self.machine = machine
        self.journal = journal
        self.inputs = dict(inputs)
        self._json_inputs: dict[str, Any] = jsonable(self.inputs)  # what builtins see
        self.budget_usd = budget_usd
        self.cwd = Path(cwd or Path.cwd())
        self._executors = executors
        self._executor_cache: dict[str, Executor] = {}
        self._on_event = on_event
        self._sleep = sleep
        self.totals = Totals()
        self.outputs: dict[str, Any] = {}
        # every state, so `STATE.attempts` is 0 (not null) before STATE runs, as checked
        self.attempts: dict[str, int] = dict.fromkeys(machine.states, 0)
        self.path: list[str] = []
        self._taken_guard: Expr | None = None
        self._info_written = float("-inf")
        self.scope: GuardScope = GuardScope(
            inputs=self.inputs, outputs=self.outputs, attempts=self.attempts
        )
        self._chart_class = build_chart(machine, evaluate=self._evaluate_guard)

    # ------------------------------------------------------------------ entry points

    def start(self) -> RunResult:
        m = self.machine
        self.journal.write_info(
            run_id=self.journal.run_id,
            machine={"name": m.name, "path": str(Path(m.source_path).resolve()),
                     "sha256": m.source_hash},
            inputs=self.inputs,
            status="running",
            current_state=m.start,
            final=None,
            path=[],
            created=_now(),
            cost_usd=0.0,
            tokens={"input": 0, "output": 0},
            budget_usd=self.budget_usd,
            cwd=str(self.cwd),
            durable=True,
        )
        self._emit(
            "run_started",
            machine=m.name,
            machine_path=str(Path(m.source_path).resolve()),
            machine_sha256=m.source_hash,
            inputs=self.inputs,
        )
        return self._guarded(lambda: self._drive(m.start, enter=True, visit=_Visit()))

    def resume(self) -> RunResult:
        """Continue the run from its journal (the caller has checked it is unfinished)."""
        state, entered, visit = self._replay(self.journal.events)
        self._emit("run_resumed", state=state)
        self.journal.write_info(status="running")
        return self._guarded(lambda: self._drive(state, enter=not entered, visit=visit))

    # ------------------------------------------------------------------ the loop

    def _guarded(self, body: Callable[[], RunResult]) -> RunResult:
        try:
            return body()
        except (KeyboardInterrupt, Interrupted) as err:
            signal_name = "SIGTERM" if isinstance(err, Interrupted) else "SIGINT"
            current = self.path[-1] if self.path else self.machine.start
            try:
                self._emit("run_interrupted", state=current, signal=signal_name)
                self._write_info(status="interrupted", current_state=current)
            except JournalError:
                pass
            return self._result("interrupted", None, f"interrupted by {signal_name}")
        except MgtError:
            raise  # the journal stays resumable: the run reads as interrupted once unlocked
        except Exception as err:  # a bug: journal it, keep the run resumable, no traceback
            current = self.path[-1] if self.path else self.machine.start
            problem = f"{type(err).__name__}: {err}"
            try:
                self._emit("run_interrupted", state=current, signal=None, error=problem)
                self._write_info(status="interrupted", current_state=current)
            except JournalError:
                pass
            raise RunError(
                f"internal error in state '{current}' ({problem}); the run is journaled and "
                f"can be resumed: mgt resume {self.journal.run_id}"
            ) from err

    def _drive(self, state: str, *, enter: bool, visit: _Visit) -> RunResult:
        chart: MachineChart | None = None
        while True:
            if self.machine.is_final(state) or state == IMPLICIT_FAIL:
                return self._finish(state, enter=enter)
            if enter:
                self.path.append(state)
                self._emit("state_entered", state=state)
                self._write_info(current_state=state, force=False)
                visit = _Visit()
            spec = self.machine.states[state]
            outcome = self._run_state(spec, visit)
            if chart is None:
                chart = self._chart(state)
            target, guard = self._route(chart, spec, outcome)
            self._emit(
                "transition", **{"from": state, "event": outcome.event, "to": target,
                                 "guard": guard}
            )
            state, enter = target, True

    def _finish(self, final: str, *, enter: bool) -> RunResult:
        spec = self.machine.finals.get(final)  # None for an implicit fail the model left out
        status = "succeeded" if spec is not None and spec.status == "succeed" else "failed"
        message = spec.message if spec is not None else None
        if final == IMPLICIT_FAIL:
            message = self._implicit_fail_message() or message
        if enter:
            self.path.append(final)
            self._emit("state_entered", state=final, final=True)
        self._emit("run_finished", status=status, final=final, message=message)
        self._write_info(status=status, final=final, current_state=final, message=message)
        return self._result(status, final, message)

    def _implicit_fail_message(self) -> str | None:
        for event in reversed(self.journal.events):
            if event.get("type") == "transition" and event.get("to") == IMPLICIT_FAIL:
                return (
                    f"state '{event['from']}' ended with '{event['event']}' "
                    "and has no transition for it"
                )
        return None

    def _result(self, status: str, final: str | None, message: str | None) -> RunResult:
        return RunResult(
            run_id=self.journal.run_id,
            run_dir=self.journal.run_dir,
            status=status,
            final=final,
            message=message,
            path=list(self.path),
            outputs=dict(self.outputs),
            totals=self.totals,
        )

    # ------------------------------------------------------------------ routing

    def _chart(self, state: str) -> MachineChart:
        """A chart instance positioned at `state` (the start, or where a resumed run is)."""
        return self._chart_class.starting_at(state, self.scope)

    def _evaluate_guard(self, expr: Expr, scope: GuardScope) -> object:
        from mgt.expr.evaluate import evaluate_guard

        value = evaluate_guard(expr, scope.names())
        if value is True:
            self._taken_guard = expr
        return value

    def _route(
        self, chart: MachineChart, spec: StateSpec, outcome: Outcome
    ) -> tuple[str, str | None]:
        """Send the outcome to the chart; a guard that cannot be evaluated is an `error`."""
        from mgt.errors import ExprError

        self.scope.output = outcome.output
        self._taken_guard = None
        try:
            target = chart.route(outcome.event)
        except ExprError as err:
            problem = f"a guard of state '{spec.name}' could not be evaluated: {err}"
            self._emit("guard_failed", state=spec.name, event=outcome.event, error=problem)
            if outcome.event == "error":  # routing the error itself failed: nowhere else to go
                outcome.event = "error"
                return IMPLICIT_FAIL, None
            outcome.event, outcome.error, outcome.retryable = "error", problem, False
            return self._route(chart, spec, outcome)
        guard = self._taken_guard
        source = next(
            (t.guard_source for t in spec.transitions if guard is not None and t.guard is guard),
            None,
        )
        return target, source

    # ------------------------------------------------------------------ a state's attempts

    def _run_state(self, spec: StateSpec, visit: _Visit) -> Outcome:
        while True:
            if visit.pending is not None:
                retry = self._take_retry(spec, visit)
                if retry is None:
                    return visit.pending
                if retry.backoff_seconds:
                    wait = retry.backoff_seconds
                    if visit.backoff_since is not None:  # resumed mid-backoff: the rest of it
                        wait = max(0.0, wait - (time.time() - visit.backoff_since))
                    else:
                        self._emit("backoff", state=spec.name, seconds=retry.backoff_seconds)
                    self._sleep(wait)
                visit.pending, visit.backoff_since = None, None
            visit.pending = self._attempt(spec, visit.feedback)
            visit.pending_attempt = self.attempts[spec.name]

    def _take_retry(self, spec: StateSpec, visit: _Visit) -> RetrySpec | None:
        """Consume a retry for the pending outcome if its event has one left (sets the feedback)."""
        outcome = visit.pending
        if outcome is None or outcome.event == "done" or not outcome.retryable:
            return None
        index = _retry_left(spec.retries, outcome.event, visit.retries_used)
        if index is None:
            return None
        visit.retries_used[index] = visit.retries_used.get(index, 0) + 1
        retry = spec.retries[index]
        visit.feedback = (
            feedback_text(outcome, visit.pending_attempt, timeout_seconds=self._timeout(spec),
                          schema=spec.output_schema)
            if retry.feedback
            else None
        )
        return retry

    def _timeout(self, spec: StateSpec) -> float:
        if spec.timeout_seconds:
            return spec.timeout_seconds
        formula = self.machine.formulas.get(spec.run.target or "") if spec.run.kind == "formula" \
            else None
        if formula is not None and formula.execution.timeout_seconds:
            return float(formula.execution.timeout_seconds)
        return DEFAULT_TIMEOUT_SECONDS

    def _attempt(self, spec: StateSpec, feedback: str | None) -> Outcome:
        name = spec.name
        number = self.attempts.get(name, 0) + 1
        self.attempts[name] = number
        attempt_dir = self.journal.attempt_dir(name, number)
        self._emit("attempt_started", state=name, attempt=number, kind=spec.run.kind)
        if feedback:
            atomic_write_text(attempt_dir / "feedback.md", feedback)
        before = Totals(self.totals.cost_usd, self.totals.input_tokens, self.totals.output_tokens)
        result = ExecResult()
        try:
            bindings = self._bindings(spec)
            result, outcome = self._dispatch(spec, number, attempt_dir, bindings, feedback)
        except _StepError as err:
            outcome = err.outcome
        except (JournalError, Interrupted):
            raise
        except MgtError as err:  # an executor that cannot run, a model the policy refuses...
            outcome = Outcome("error", error=str(err), retryable=not isinstance(err, UsageError))
        self.totals.add(result)
        if outcome.output is not None:
            atomic_write_json(attempt_dir / "output.json", outcome.output, durable=False)
        self._emit(
            "attempt_finished",
            state=name,
            attempt=number,
            outcome=outcome.event,
            cost_usd=round(self.totals.cost_usd - before.cost_usd, 8),
            tokens={"input": self.totals.input_tokens - before.input_tokens,
                    "output": self.totals.output_tokens - before.output_tokens},
            error=outcome.error,
            problems=outcome.problems or None,
            retryable=outcome.retryable,
            output=outcome.output,  # the durable copy: resume reads it from here
        )
        if outcome.event == "done":
            self.outputs[name] = outcome.output
            self.journal.write_output(name, outcome.output)
        return outcome

    def _bindings(self, spec: StateSpec) -> dict[str, Any]:
        from mgt.errors import ExprError
        from mgt.expr.evaluate import evaluate

        env = self.scope.names()
        env["output"] = None
        values: dict[str, Any] = {}
        for key, expr in spec.bindings:
            try:
                values[key] = evaluate(expr, env)
            except ExprError as err:
                raise _StepError(Outcome("error", error=f"binding '{key}': {err}")) from None
        return values

    # ------------------------------------------------------------------ dispatch by run kind

    def _context(
        self, spec: StateSpec, attempt: int, attempt_dir: Path, bindings: Mapping[str, Any]
    ) -> StepContext:
        formula = self.machine.formulas.get(spec.run.target or "") \
            if spec.run.kind == "formula" else None
        polecat_name = formula.polecat if formula is not None else (
            spec.run.target if spec.run.kind == "polecat" else None
        )
        return StepContext(
            run_id=self.journal.run_id,
            run_dir=self.journal.run_dir,
            attempt_dir=attempt_dir,
            state=spec.name,
            attempt=attempt,
            machine_inputs=self._json_inputs,
            bindings=jsonable(bindings),
            outputs=self.outputs,
            cwd=self.cwd,
            timeout_seconds=self._timeout(spec),
            formula=formula,
            polecat=self.machine.polecats.get(polecat_name or ""),
            schemas=self.machine.schemas,
            progress=lambda msg: self._emit_progress(spec.name, msg),
        )

    def _dispatch(
        self,
        spec: StateSpec,
        attempt: int,
        attempt_dir: Path,
        bindings: dict[str, Any],
        feedback: str | None,
    ) -> tuple[ExecResult, Outcome]:
        ctx = self._context(spec, attempt, attempt_dir, bindings)
        kind = spec.run.kind
        if kind == "builtin":
            result = self._run_builtin(spec, ctx)
            return result, self._classify(spec, ctx, result, parse_text=False)
        if kind == "command":
            try:
                env = command_env(bindings)
            except InputProblem as err:
                return ExecResult(), Outcome("error", error=str(err), retryable=False)
            request = self._request(spec, attempt, attempt_dir, bindings, prompt=None, env=env)
            atomic_write_json(attempt_dir / "request.json", _request_json(request))
            result = self._executor("command").run(request)
            if spec.output_schema is not None and result.error is None and not result.timed_out:
                stdout = (result.output or {}).get("stdout") if isinstance(result.output, dict) \
                    else result.text
                result.output, result.text = None, stdout
                return result, self._classify(spec, ctx, result, parse_text=True)
            return result, self._classify(spec, ctx, result, parse_text=False)
        # formula / polecat: a model call
        if self.budget_usd is not None and self.totals.cost_usd >= self.budget_usd:
            message = (f"budget exhausted: spent ${self.totals.cost_usd:.4f} "
                       f"of ${self.budget_usd:.4f}")
            return ExecResult(), Outcome("error", error=message, retryable=False)
        try:
            if spec.run.kind == "formula":
                formula = self.machine.formulas[spec.run.target or ""]
                check_inputs(formula, bindings, self.machine.schemas)  # before any context work
            sections = _prompt_context(spec, self.machine, ctx)
            prompt = build_prompt(self.machine, spec, bindings, attempt_dir, feedback, sections)
        except InputProblem as err:
            return ExecResult(), Outcome("error", error=str(err), retryable=False)
        request = self._request(spec, attempt, attempt_dir, bindings, prompt=prompt)
        atomic_write_text(attempt_dir / "prompt.md", _prompt_file(prompt))
        atomic_write_json(attempt_dir / "request.json", _request_json(request))
        result = self._executor("model").run(request)
        return result, self._classify(spec, ctx, result, parse_text=True)

    def _request(
        self,
        spec: StateSpec,
        attempt: int,
        attempt_dir: Path,
        bindings: Mapping[str, Any],
        *,
        prompt: Prompt | None,
        env: Mapping[str, str] | None = None,
    ) -> ExecRequest:
        model: str | None = None
        tools: tuple[str, ...] = ()
        if prompt is not None:
            from mgt.executors.mapping import map_model, map_tools

            polecat = self._polecat(spec)
            if polecat is not None:
                model = map_model(polecat.model.name)
                tools = map_tools(polecat.tools.available, polecat=polecat.name)
            else:
                model = map_model(None)
        return ExecRequest(
            run_id=self.journal.run_id,
            state=spec.name,
            attempt=attempt,
            prompt=prompt.text if prompt is not None else "",
            system_prompt=prompt.system_prompt if prompt is not None else None,
            model=model,
            tools=tools,
            output_schema=prompt.output_schema if prompt is not None else None,
            cwd=self.cwd,
            timeout_seconds=self._timeout(spec),
            attempt_dir=attempt_dir,
            inputs=jsonable(dict(bindings)),
            command=spec.run.command,
            builtin=spec.run.target if spec.run.kind == "builtin" else None,
            env=dict(env or {}),
        )

    def _polecat(self, spec: StateSpec) -> Any:
        if spec.run.kind == "formula":
            formula = self.machine.formulas.get(spec.run.target or "")
            return self.machine.polecats.get(formula.polecat) if formula is not None else None
        return self.machine.polecats.get(spec.run.target or "")

    def _executor(self, kind: str) -> Executor:
        if kind not in self._executor_cache:
            if self._executors is None:
                raise ExecutorError(f"no executor available for a {kind} step")
            self._executor_cache[kind] = self._executors(kind)
        return self._executor_cache[kind]

    def _run_builtin(self, spec: StateSpec, ctx: StepContext) -> ExecResult:
        from mgt.extensions import BUILTINS, resolve

        name = spec.run.target or ""
        ref = BUILTINS.get(name)
        if ref is None:
            return ExecResult(error=f"unknown builtin '{name}'")
        try:
            fn = resolve(ref)
            output = fn(ctx)
        except GuardrailFailure as err:
            return ExecResult(guardrail=list(err.problems) or [str(err)])
        except StepFailure as err:
            return ExecResult(error=str(err) or f"builtin '{name}' failed")
        except MgtError as err:
            return ExecResult(error=str(err))
        except (KeyboardInterrupt, Interrupted):
            raise
        except Exception as err:  # a bug in a builtin must not kill the run: journal it
            return ExecResult(error=f"builtin '{name}' raised {type(err).__name__}: {err}")
        return ExecResult(output=jsonable(output) if output is not None else {})

    def _classify(
        self, spec: StateSpec, ctx: StepContext, result: ExecResult, *, parse_text: bool
    ) -> Outcome:
        schemas = self.machine.schemas
        validate = schemas.validate if schemas is not None else None
        schema = spec.output_schema if schemas is not None and spec.output_schema in schemas \
            else None
        crashed: list[str] = []

        def checks(output: Any) -> list[str]:
            from mgt.extensions import OUTPUT_CHECKS, resolve

            problems: list[str] = []
            for ref in OUTPUT_CHECKS.get(schema or "", []):
                try:
                    problems += list(resolve(ref)(ctx, output))
                except GuardrailFailure as err:
                    problems += list(err.problems)
                except (KeyboardInterrupt, Interrupted):
                    raise
                except Exception as err:  # a broken check is an error, not the model's fault
                    crashed.append(f"output check {ref} raised {type(err).__name__}: {err}")
                    return []
            return problems

        outcome = classify(
            result,
            schema=schema,
            validate=validate,
            checks=checks if schema is not None else None,
            parse_text=parse_text,
            default_output=lambda r: {"text": r.text or ""},
        )
        if crashed:
            return Outcome("error", output=outcome.output, error=crashed[0])
        return outcome

    # ------------------------------------------------------------------ journal plumbing

    def _emit(self, type: str, **fields: Any) -> dict[str, Any]:
        event = self.journal.append(type, **fields)
        if self._on_event is not None:
            self._on_event(event, self.totals)
        return event

    def _emit_progress(self, state: str, message: str) -> None:
        if self._on_event is not None:
            self._on_event({"type": "progress", "state": state, "message": message}, self.totals)

    def _write_info(self, *, force: bool = True, **fields: Any) -> None:
        """Refresh run.json; a routine refresh is skipped if one was written very recently.

        run.json is a view of the events (which hold the truth), so on a long chain
        of quick steps it is refreshed at most every INFO_REFRESH_SECONDS; the start,
        the end and an interruption always write it.
        """
        now = time.monotonic()
        if not force and now - self._info_written < INFO_REFRESH_SECONDS:
            return
        self._info_written = now
        self.journal.write_info(
            path=list(self.path),
            cost_usd=round(self.totals.cost_usd, 6),
            tokens={"input": self.totals.input_tokens, "output": self.totals.output_tokens},
            **fields,
        )

    # ------------------------------------------------------------------ resume

    def _replay(self, events: list[dict[str, Any]]) -> tuple[str, bool, _Visit]:
        """Rebuild totals, outputs, attempts and the path; return where to continue.

        Returns (state, entered, visit): `entered` is False when the run stopped
        between a transition and entering its target.
        """
        state: str | None = None
        entered = False
        visit = _Visit()
        last_done_attempt: dict[str, int] = {}
        for ev in events:
            kind = ev.get("type")
            for key in ("state", "to"):
                name = ev.get(key)
                if isinstance(name, str) and name not in self.machine.states \
                        and name not in self.machine.finals:
                    raise JournalError(
                        f"run {self.journal.run_id}: its journal names state '{name}', which "
                        f"{self.machine.source_path} does not declare (seq {ev.get('seq')})"
                    )
            if kind == "run_started":
                state, entered = self.machine.start, False
            elif kind == "state_entered":
                state, entered = str(ev["state"]), True
                self.path.append(state)
                visit = _Visit()
            elif kind == "attempt_started":
                name = str(ev["state"])
                self.attempts[name] = max(self.attempts.get(name, 0), int(ev["attempt"]))
                spec = self.machine.states.get(name)
                if visit.pending is not None and spec is not None:
                    self._take_retry(spec, visit)  # the retry decision that was made
                visit.pending, visit.backoff_since = None, None
            elif kind == "attempt_finished":
                name = str(ev["state"])
                tokens = ev.get("tokens") or {}
                self.totals.cost_usd += float(ev.get("cost_usd") or 0.0)
                self.totals.input_tokens += int(tokens.get("input", 0))
                self.totals.output_tokens += int(tokens.get("output", 0))
                output = ev["output"] if "output" in ev else \
                    self._attempt_output(name, int(ev["attempt"]))
                outcome = Outcome(
                    str(ev["outcome"]),
                    output=output,
                    problems=list(ev.get("problems") or []),
                    error=ev.get("error"),
                    retryable=bool(ev.get("retryable", True)),
                )
                if outcome.event == "done":
                    last_done_attempt[name] = int(ev["attempt"])
                    self.outputs[name] = outcome.output
                visit.pending = outcome
                visit.pending_attempt = int(ev["attempt"])
            elif kind == "backoff":
                visit.backoff_since = _epoch(str(ev.get("ts", "")))
            elif kind == "transition":
                state, entered = str(ev["to"]), False
                visit = _Visit()
        if state is None:
            raise JournalError(f"run {self.journal.run_id}: no run_started event; cannot resume")
        for name in last_done_attempt:  # rewrite: the process may have died before it did
            self.journal.write_output(name, self.outputs[name])
        return state, entered, visit

    def _attempt_output(self, state: str, attempt: int) -> Any:
        path = self.journal.run_dir / "states" / state / str(attempt) / "output.json"
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, RecursionError) as err:
            raise JournalError(f"cannot read {path}: {err}") from err


class _StepError(Exception):
    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.error)
        self.outcome = outcome


def command_env(bindings: Mapping[str, Any]) -> dict[str, str]:
    """A command's `with` bindings as environment variables: text as is, null as empty,
    anything else as JSON (`true`, `3`, `["a", "b"]`, a duration as its text)."""
    env: dict[str, str] = {}
    for key, value in jsonable(dict(bindings)).items():
        text = "" if value is None else value if isinstance(value, str) \
            else json.dumps(value, ensure_ascii=False)
        if "\0" in text:
            raise InputProblem(f"binding '{key}' contains a NUL byte, which an environment "
                               "variable cannot hold")
        env[key] = text
    return env


def _retry_left(retries: tuple[RetrySpec, ...], event: str, used: Mapping[int, int]) -> int | None:
    for index, retry in enumerate(retries):
        if event in retry.events:
            return index if used.get(index, 0) < retry.count else None
    return None


def _prompt_context(spec: StateSpec, machine: Machine, ctx: StepContext) -> list[str]:
    """PROMPT_CONTEXT sections for a formula state (extensions compute them from the context)."""
    if spec.run.kind != "formula":
        return []
    from mgt.extensions import PROMPT_CONTEXT, resolve

    sections: list[str] = []
    for ref in PROMPT_CONTEXT.get(spec.run.target or "", []):
        try:
            section = resolve(ref)(ctx)
        except (KeyboardInterrupt, Interrupted):
            raise
        except MgtError as err:
            raise InputProblem(f"prompt context {ref}: {err}") from None
        except Exception as err:
            raise InputProblem(f"prompt context {ref} raised {type(err).__name__}: {err}") from None
        if section:
            sections.append(str(section))
    return sections


def build_prompt(
    machine: Machine,
    spec: StateSpec,
    bindings: Mapping[str, Any],
    file_dir: Path | None,
    feedback: str | None,
    sections: list[str],
) -> Prompt:
    """The prompt of a formula/polecat state (`file_dir` None: a preview, no file written)."""
    if spec.run.kind == "formula":
        formula = machine.formulas[spec.run.target or ""]
        polecat = machine.polecats.get(formula.polecat)
        return formula_prompt(
            formula,
            polecat.system_prompt if polecat is not None else None,
            bindings,
            schema_name=spec.output_schema,
            schemas=machine.schemas,
            file_dir=file_dir,
            context_sections=sections,
            feedback=feedback,
        )
    polecat = machine.polecats.get(spec.run.target or "")
    return polecat_prompt(
        spec.run.prompt or "",
        polecat.system_prompt if polecat is not None else None,
        bindings,
        schema_name=spec.output_schema,
        schemas=machine.schemas,
        feedback=feedback,
    )


def _prompt_file(prompt: Prompt) -> str:
    head = ""
    if prompt.system_prompt:
        head = "<!-- system prompt -->\n" + prompt.system_prompt.strip() + "\n\n<!-- prompt -->\n"
    return head + prompt.text


def _request_json(request: ExecRequest) -> dict[str, Any]:
    return {
        "run_id": request.run_id,
        "state": request.state,
        "attempt": request.attempt,
        "model": request.model,
        "tools": list(request.tools),
        "system_prompt": request.system_prompt,
        "prompt": request.prompt,
        "output_schema": request.output_schema,
        "cwd": str(request.cwd),
        "timeout_seconds": request.timeout_seconds,
        "command": request.command,
        "inputs": request.inputs,
    }


def _epoch(iso: str) -> float | None:
    from datetime import datetime

    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _now() -> str:
    from mgt.runtime.journal import now_iso

    return now_iso()
