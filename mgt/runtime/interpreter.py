"""A compiled `Machine` + typed inputs → a durable run that ends in a final (or resumes one).

    Interpreter.start()    new run: run_started, then the start state
    Interpreter.resume()   an existing run: continues where its journal stops

The run's state is the fold of its journal (`mgt.runtime.events.RunState`), kept
by the `RunJournal` as each event is written; the loop reads it, runs the next
attempt or asks `mgt.runtime.decide.decide` (pure) what follows an outcome, and
journals what it does. A fresh run and a resumed one go through the same loop:

    state_entered → attempt_started → attempt_finished [→ backoff → attempt_started ...]
                  → transition → state_entered ... → run_finished

so a run killed at any instant is rebuilt exactly: a finished attempt is never
re-run (its outcome and output are in its event), an attempt that started but did
not finish is run again under the next attempt number, after what is left of its
processes is ended (`mgt.executors.process.end_leftovers`).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mgt.compile.model import (
    IMPLICIT_FAIL,
    BuiltinStep,
    CommandStep,
    FormulaStep,
    Machine,
    MachineStep,
    PolecatStep,
    StateSpec,
    Step,
    step_of,
)
from mgt.errors import ExecutorError, Interrupted, JournalError, MgtError, RunError, UsageError
from mgt.executors.base import ExecRequest, ExecResult, Executor
from mgt.runtime.context import GuardrailFailure, StepContext, StepFailure
from mgt.runtime.decide import Retry, Router, decide, outcome_of
from mgt.runtime.events import (
    AttemptFinished,
    AttemptStarted,
    Backoff,
    Event,
    GuardFailed,
    ItemFinished,
    ItemStarted,
    ProcessStarted,
    RunFinished,
    RunInterrupted,
    RunResumed,
    RunStarted,
    RunState,
    StateEntered,
    Transition,
    epoch,
)
from mgt.runtime.fanout import FanOutItem, Policy, failures, items_of, join, policy_of
from mgt.runtime.journal import (
    DURABLE_EVENTS,
    MAX_DEPTH,
    RunJournal,
    TooDeep,
    atomic_write_json,
    atomic_write_text,
    jsonable,
    run_summary,
)
from mgt.runtime.outcome import Outcome, classify
from mgt.runtime.prompt import (
    InputProblem,
    Prompt,
    check_inputs,
    formula_prompt,
    polecat_prompt,
)

if TYPE_CHECKING:
    from mgt.compile.chart import GuardScope

__all__ = [
    "DEFAULT_TIMEOUT_SECONDS",
    "Extensions",
    "Interpreter",
    "Interrupted",
    "RunResult",
    "Totals",
    "build_prompt",
    "run_info",
    "timeout_of",
]

#: Timeout for a step whose state and formula give none.
DEFAULT_TIMEOUT_SECONDS = 600.0
#: How often run.json is refreshed at most while states go by (see `_write_info`).
INFO_REFRESH_SECONDS = 0.25

EventHook = Callable[[dict[str, Any], "Totals"], None]
ExecutorFactory = Callable[[str], Executor]  # "model" | "command" → an executor


@dataclass(frozen=True)
class Extensions:
    """The extension tables a run uses (see `mgt.extensions`): name → "module:function".

    The defaults are the module tables themselves, so an entry added to them later
    is seen; a test or an embedding passes its own.
    """

    builtins: Mapping[str, str]
    output_checks: Mapping[str, list[str]]
    prompt_context: Mapping[str, list[str]]

    @classmethod
    def defaults(cls) -> Extensions:
        from mgt.extensions import BUILTINS, OUTPUT_CHECKS, PROMPT_CONTEXT

        return cls(BUILTINS, OUTPUT_CHECKS, PROMPT_CONTEXT)


@dataclass
class Totals:
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0

    @classmethod
    def of(cls, run: RunState) -> Totals:
        return cls(run.cost_usd, run.input_tokens, run.output_tokens)


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
    run: RunState = field(default_factory=RunState)

    @property
    def exit_code(self) -> int:
        return {"succeeded": 0, "failed": 1}.get(self.status, 130)

    def summary(self) -> dict[str, Any]:
        """The `mgt exec --json` object (docs/cli.md), written by `journal.run_summary`."""
        return run_summary(self.run_id, self.status, self.run, self.outputs)


def run_info(machine: Machine, inputs: Mapping[str, Any], *, budget_usd: float | None,
             cwd: Path) -> dict[str, Any]:
    """run.json of a run about to start: the machine and every definition file it loaded
    (pinned by hash, so resume can refuse changed ones), inputs, budget, where it runs."""
    return {
        "machine": {"name": machine.name, "path": str(Path(machine.source_path).resolve()),
                    "sha256": machine.source_hash},
        "definitions": dict(machine.definitions),
        "inputs": dict(inputs),
        "status": "running",
        "current_state": machine.start,
        "final": None,
        "path": [],
        "cost_usd": 0.0,
        "tokens": {"input": 0, "output": 0},
        "budget_usd": budget_usd,
        "cwd": str(cwd),
    }


def timeout_of(machine: Machine, spec: StateSpec) -> float:
    """A state's timeout in seconds: the state's, else its formula's, else the default (the
    same rule for every engine)."""
    if spec.timeout_seconds:
        return spec.timeout_seconds
    formula = machine.formulas.get(spec.run.target or "") if spec.run.kind == "formula" \
        else None
    if isinstance(spec.step, FormulaStep):
        formula = spec.step.formula
    if formula is not None and formula.execution.timeout_seconds:
        return float(formula.execution.timeout_seconds)
    return DEFAULT_TIMEOUT_SECONDS


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
        extensions: Extensions | None = None,
    ) -> None:
        from mgt.compile.chart import GuardScope, build_chart

        self.machine = machine
        self.journal = journal
        self.inputs = dict(inputs)
        self._json_inputs: dict[str, Any] = jsonable(self.inputs)  # what builtins see
        self.budget_usd = budget_usd
        self.cwd = Path(cwd or Path.cwd())
        self.extensions = extensions or Extensions.defaults()
        self._executors = executors
        self._executor_cache: dict[str, Executor] = {}
        self._steps: dict[str, Step] = {}
        self._on_event = on_event
        self._sleep = sleep
        self._info_written = float("-inf")
        # fan-out items run on threads: one journal writer at a time, one executor per kind
        self._emit_lock = threading.RLock()
        self._executor_lock = threading.Lock()
        self.run: RunState = journal.state
        # every state, so `STATE.attempts` is 0 (not null) before STATE runs, as checked
        for name in machine.states:
            self.run.attempts.setdefault(name, 0)
        self.scope: GuardScope = GuardScope(
            inputs=self.inputs, outputs=self.run.outputs, attempts=self.run.attempts
        )
        self._router = Router(build_chart(machine))

    # views of the run state, for callers of older versions
    @property
    def totals(self) -> Totals:
        return Totals.of(self.run)

    @property
    def outputs(self) -> dict[str, Any]:
        return self.run.outputs

    @property
    def attempts(self) -> dict[str, int]:
        return self.run.attempts

    @property
    def path(self) -> list[str]:
        return self.run.path

    # ------------------------------------------------------------------ entry points

    def start(self) -> RunResult:
        m = self.machine
        info = run_info(m, self.inputs, budget_usd=self.budget_usd, cwd=self.cwd)
        info.setdefault("created", self.journal.info.get("created") or _now())
        self.journal.write_info(run_id=self.journal.run_id, durable=True, **info)
        self._emit(RunStarted(machine=m.name, machine_path=info["machine"]["path"],
                              machine_sha256=m.source_hash, inputs=self.inputs))
        return self._guarded(self._drive)

    def resume(self) -> RunResult:
        """Continue the run from its journal (the caller has checked it is unfinished)."""
        if not self.run.events:  # killed between creating the run and its first event
            return self.start()
        self._check_journal()
        self._load_old_outputs()
        from mgt.executors.process import end_leftovers

        end_leftovers(self.journal.run_id, self.run.processes.values(),
                      tee_under=self.journal.run_dir / "states")
        self._emit(RunResumed(state=self.run.state or self.machine.start))
        self.journal.write_info(status="running")
        return self._guarded(self._drive)

    # ------------------------------------------------------------------ the loop

    # ------------------------------------------------------------------ one step, for an engine

    # Another engine (Temporal) drives the run itself and asks for one attempt or one
    # fan-out item at a time. Its fold of the run is the truth: `adopt` takes it over,
    # and the journal of this interpreter only keeps the attempt's files and events.

    def adopt(self, outputs: Mapping[str, Any], attempts: Mapping[str, int],
              cost_usd: float) -> None:
        """Take the engine's outputs, attempt numbers and cost as this run's own.

        Outputs are updated, never removed (a run's outputs only grow or are replaced),
        so fan-out items running on other threads keep reading whole values.
        """
        with self._emit_lock:
            self.run.outputs.update(outputs)
            self.run.attempts.update(attempts)
            self.run.cost_usd = float(cost_usd)

    def run_attempt(self, state: str, attempt: int, feedback: str | None) -> AttemptFinished:
        """Make attempt `attempt` of `state` (a fan-out's items all at once, on threads);
        its attempt_finished event."""
        spec = self._spec_named(state)
        with self._emit_lock:
            self.run.attempts[state] = attempt - 1
            before = len(self.run.events)
        self._attempt(spec, feedback)
        for event in reversed(self.run.events[before:]):
            if isinstance(event, AttemptFinished) and event.state == state:
                return event
        raise RunError(f"attempt {state}/{attempt} left no attempt_finished event")

    def run_item(self, state: str, attempt: int, index: int, feedback: str | None,
                 control: FanOutControl) -> ItemFinished | None:
        """Item `index` of fan-out state `state` in attempt `attempt` (its list evaluated
        over the adopted outputs), retried by the state's clauses; its item_finished event,
        or None when `control` interrupted it."""
        spec = self._spec_named(state)
        jobs = self.fan_out_items(spec)
        if isinstance(jobs, Outcome):
            raise RunError(f"state '{state}': {jobs.error}")
        if not 0 <= index < len(jobs):
            raise RunError(f"state '{state}' has {len(jobs)} items, not an item {index}")
        attempt_dir = self.journal.attempt_dir(state, attempt)
        return self._run_item(jobs[index], attempt, attempt_dir, feedback, control)

    def _spec_named(self, state: str) -> StateSpec:
        spec = self.machine.states.get(state)
        if spec is None:
            raise RunError(f"machine {self.machine.name} has no state '{state}'")
        return spec

    def _guarded(self, body: Callable[[], RunResult]) -> RunResult:
        try:
            return body()
        except (KeyboardInterrupt, Interrupted) as err:
            signal_name = "SIGTERM" if isinstance(err, Interrupted) else "SIGINT"
            current = self.run.current_state or self.machine.start
            try:
                self._emit(RunInterrupted(state=current, signal=signal_name))
                self._write_info(status="interrupted", current_state=current)
            except JournalError:
                pass
            return self._result("interrupted", None, f"interrupted by {signal_name}")
        except MgtError:
            raise  # the journal stays resumable: the run reads as interrupted once unlocked
        except Exception as err:  # a bug: journal it, keep the run resumable, no traceback
            current = self.run.current_state or self.machine.start
            problem = f"{type(err).__name__}: {err}"
            try:
                self._emit(RunInterrupted(state=current, error=problem))
                self._write_info(status="interrupted", current_state=current)
            except JournalError:
                pass
            raise RunError(
                f"internal error in state '{current}' ({problem}); the run is journaled and "
                f"can be resumed: mgt resume {self.journal.run_id}"
            ) from err

    def _drive(self) -> RunResult:
        """The loop: read the run state, do the one next thing, journal it; until a final."""
        run = self.run
        while True:
            state = run.state or self.machine.start
            if self.machine.is_final(state) or state == IMPLICIT_FAIL:
                return self._finish(state)
            if not run.entered:
                self._emit(StateEntered(state=state))
                self._write_info(current_state=state, force=False)
            spec = self.machine.states[state]
            visit = run.visit
            if visit.pending is None:  # nothing to decide on: (re)make an attempt
                self._attempt(spec, self._feedback_of_last_retry(spec))
                continue
            outcome = outcome_of(visit.pending)
            if spec.fan_out is not None or spec.branches:  # each item used its retries
                spec = _without_retries(spec)
            action = decide(self._router, spec, [e.outcome for e in visit.retried],
                            outcome, self.scope, attempt=visit.pending.attempt,
                            timeout_seconds=self._timeout(spec))
            if isinstance(action, Retry):
                if action.backoff_seconds:
                    self._back_off(spec, action.backoff_seconds)
                self._attempt(spec, action.feedback)
                continue
            for event, problem in action.guard_errors:
                self._emit(GuardFailed(state=state, event=event, error=problem))
            self._emit(Transition(source=state, event=action.event, target=action.target,
                                  guard=action.guard))

    def _back_off(self, spec: StateSpec, seconds: float) -> None:
        """Wait before a retry; resumed mid-backoff, only what is left of it (never more than
        the backoff itself, whatever the clock or the journal says)."""
        journaled = self.run.visit.backoff
        wait = seconds
        if journaled is None:
            self._emit(Backoff(state=spec.name, seconds=seconds))
        else:
            since = epoch(journaled.ts)
            if since is not None:
                wait = max(0.0, seconds - (time.time() - since))
        self._sleep(min(wait, seconds))

    def _feedback_of_last_retry(self, spec: StateSpec) -> str | None:
        """The feedback of the retry that led here (an attempt cut short is made again with
        the feedback it had), None on a visit's first attempt."""
        retried = self.run.visit.retried
        if not retried:
            return None
        last = retried[-1]
        action = decide(self._router, spec, [e.outcome for e in retried[:-1]],
                        outcome_of(last), self.scope, attempt=last.attempt,
                        timeout_seconds=self._timeout(spec))
        return action.feedback if isinstance(action, Retry) else None

    def _finish(self, final: str) -> RunResult:
        spec = self.machine.finals.get(final)  # None for an implicit fail the model left out
        status = "succeeded" if spec is not None and spec.status == "succeed" else "failed"
        message = spec.message if spec is not None else None
        if final == IMPLICIT_FAIL:
            message = self._implicit_fail_message() or message
        if not self.run.entered:
            self._emit(StateEntered(state=final, final=True))
        self._emit(RunFinished(status=status, final=final, message=message))
        self._write_info(status=status, final=final, current_state=final, message=message)
        return self._result(status, final, message)

    def _implicit_fail_message(self) -> str | None:
        for step in reversed(self.run.transitions):
            if step.target == IMPLICIT_FAIL:
                return (f"state '{step.source}' ended with '{step.event}' "
                        "and has no transition for it")
        return None

    def _result(self, status: str, final: str | None, message: str | None) -> RunResult:
        return RunResult(
            run_id=self.journal.run_id,
            run_dir=self.journal.run_dir,
            status=status,
            final=final,
            message=message,
            path=list(self.run.path),
            outputs=dict(self.run.outputs),
            totals=self.totals,
            run=self.run,
        )

    # ------------------------------------------------------------------ a state's attempts

    def _timeout(self, spec: StateSpec) -> float:
        return timeout_of(self.machine, spec)

    def _attempt(self, spec: StateSpec, feedback: str | None) -> Outcome:
        from mgt.executors.process import attempt_processes

        name = spec.name
        number = self.run.attempts.get(name, 0) + 1
        attempt_dir = self.journal.attempt_dir(name, number)
        self._emit(AttemptStarted(state=name, attempt=number, kind=spec.run.kind))
        if feedback:
            atomic_write_text(attempt_dir / "feedback.md", feedback)
        result = ExecResult()

        def started(pgid: int) -> None:
            self._emit(ProcessStarted(state=name, attempt=number, pgid=pgid))

        try:
            if spec.fan_out is not None or spec.branches:
                outcome = self._run_fan_out(spec, number, attempt_dir, feedback)
            else:
                bindings = self._bindings(spec)
                with attempt_processes(self.journal.run_id, f"{name}/{number}", started):
                    result, outcome = self._dispatch(spec, number, attempt_dir, bindings,
                                                     feedback)
        except _StepError as err:
            outcome = err.outcome
        except TooDeep as err:  # a binding or a builtin's output the journal cannot keep
            outcome = Outcome("error", error=f"a value of state '{name}' (a binding or its "
                              f"output) is {err}", retryable=False)
        except (JournalError, Interrupted):
            raise
        except MgtError as err:  # an executor that cannot run, a model the policy refuses...
            outcome = Outcome("error", error=str(err), retryable=not isinstance(err, UsageError))
        outcome = _keepable(outcome)
        if outcome.output is not None:
            atomic_write_json(attempt_dir / "output.json", outcome.output, durable=False)
        self._emit(AttemptFinished(
            state=name,
            attempt=number,
            outcome=outcome.event,
            cost_usd=round(result.cost_usd or 0.0, 8),
            input_tokens=result.input_tokens or 0,
            output_tokens=result.output_tokens or 0,
            error=outcome.error,
            problems=tuple(outcome.problems),
            retryable=outcome.retryable,
            output=jsonable(outcome.output),
        ))
        if outcome.event == "done":
            self.journal.write_output(name, outcome.output)
        return outcome

    def _bindings(self, spec: StateSpec, item: Mapping[str, Any] | None = None
                  ) -> dict[str, Any]:
        from mgt.errors import ExprError
        from mgt.expr.evaluate import evaluate

        env = self.scope.names()
        env["output"] = None
        for key, value in (item or {}).items():  # a fan-out's item name, in its bindings only
            env[key] = value
        values: dict[str, Any] = {}
        for key, expr in spec.bindings:
            try:
                values[key] = evaluate(expr, env)
            except ExprError as err:
                raise _StepError(Outcome("error", error=f"binding '{key}': {err}")) from None
        return values

    # ------------------------------------------------------------------ one runner per step kind

    def _step(self, spec: StateSpec) -> Step:
        if spec.step is not None:  # lowered (a branch shares its state's name: not by name)
            return spec.step
        step = self._steps.get(spec.name)
        if step is None:
            try:
                step = step_of(spec, self.machine.polecats, self.machine.formulas)
            except ValueError as err:
                raise _StepError(Outcome("error", error=str(err), retryable=False)) from None
            self._steps[spec.name] = step
        return step

    def _context(self, spec: StateSpec, step: Step, attempt: int, attempt_dir: Path,
                 bindings: Mapping[str, Any]) -> StepContext:
        formula = step.formula if isinstance(step, FormulaStep) else None
        polecat = step.polecat if isinstance(step, FormulaStep | PolecatStep) else None
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
            polecat=polecat,
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
        step = self._step(spec)
        ctx = self._context(spec, step, attempt, attempt_dir, bindings)
        job = _Job(spec, step, attempt, attempt_dir, bindings, feedback, ctx)
        if isinstance(step, BuiltinStep):
            return self._run_builtin_step(job, step)
        if isinstance(step, CommandStep):
            return self._run_command_step(job, step)
        if isinstance(step, MachineStep):
            return self._run_machine_step(job, step)
        return self._run_model_step(job, step)

    def _run_machine_step(self, job: _Job, step: MachineStep) -> tuple[ExecResult, Outcome]:
        """Run (or resume, or read back) the child machine in its own run directory.

        The child's run lives under this run's `machines/`, named after the state, its visit
        and the item and try (never the attempt number, which a resume changes), so a resumed
        parent finds its child: finished, its result is read back; unfinished, it resumes.
        """
        from mgt.expr.evaluate import evaluate
        from mgt.runtime.journal import RunJournal

        spec = job.spec
        relative = job.attempt_dir.relative_to(self.journal.run_dir / "states" / spec.name)
        visits = self.run.states[spec.name].visits if spec.name in self.run.states else 1
        child_id = "-".join([spec.name, f"v{visits}", *relative.parts[1:]])
        machines = self.journal.run_dir / "machines"
        child = step.machine
        inputs = {i.name: i.default for i in child.inputs if i.default is not None}
        inputs.update(job.bindings)
        budget = None if self.budget_usd is None else max(0.0, self.budget_usd
                                                           - self.run.cost_usd)

        def forward(event: dict[str, Any], totals: Totals) -> None:
            if event.get("type") == "state_entered" and not event.get("final"):
                self._emit_progress(spec.name, f"{child_id}: ▶ {event.get('state')}")

        if (machines / child_id / "events.jsonl").is_file():
            journal = RunJournal.open(machines, child_id)
        else:
            journal = RunJournal.create(machines, child_id)
        with journal:
            interpreter = Interpreter(child, journal, inputs, executors=self._executors,
                                      budget_usd=budget, cwd=self.cwd, on_event=forward,
                                      extensions=self.extensions)
            if journal.state.finished is not None:
                result = interpreter._result(journal.state.status, journal.state.final,
                                             journal.state.message)
            elif journal.state.events:
                result = interpreter.resume()
            else:
                result = interpreter.start()
            scope = interpreter.scope
        spent = ExecResult(cost_usd=result.totals.cost_usd,
                           input_tokens=result.totals.input_tokens,
                           output_tokens=result.totals.output_tokens)
        if result.status == "interrupted":
            raise Interrupted(f"machine {child.name} was interrupted")
        if result.status != "succeeded":
            spent.error = (f"machine '{child.name}' ended at '{result.final}'"
                           + (f": {result.message}" if result.message else ""))
            return spent, Outcome("error", error=spent.error)
        final = child.finals.get(result.final or "")
        value: Any = None
        if final is not None and final.returns is not None:
            try:
                value = evaluate(final.returns, scope.names())
            except MgtError as err:
                return spent, Outcome("error", error=f"machine '{child.name}' returns: {err}")
        spent.output = jsonable(value)
        return spent, Outcome("done", output=spent.output)

    def _run_builtin_step(self, job: _Job, step: BuiltinStep) -> tuple[ExecResult, Outcome]:
        result = self._run_builtin(step.name, job.ctx)
        return result, self._classify(job.spec, job.ctx, result, parse_text=False)

    def _run_command_step(self, job: _Job, step: CommandStep) -> tuple[ExecResult, Outcome]:
        try:
            env = command_env(job.bindings)
        except InputProblem as err:
            return ExecResult(), Outcome("error", error=str(err), retryable=False)
        request = self._request(job, command=step.command, env=env)
        atomic_write_json(job.attempt_dir / "request.json", _request_json(request))
        result = self._executor("command").run(request)
        spec = job.spec
        if spec.output_schema is not None and result.error is None and not result.timed_out:
            stdout = (result.output or {}).get("stdout") if isinstance(result.output, dict) \
                else result.text
            result.output, result.text = None, stdout
            return result, self._classify(spec, job.ctx, result, parse_text=True)
        return result, self._classify(spec, job.ctx, result, parse_text=False)

    def _run_model_step(self, job: _Job, step: FormulaStep | PolecatStep
                        ) -> tuple[ExecResult, Outcome]:
        if self.budget_usd is not None and self.run.cost_usd >= self.budget_usd:
            message = (f"budget exhausted: spent ${self.run.cost_usd:.4f} "
                       f"of ${self.budget_usd:.4f}")
            return ExecResult(), Outcome("error", error=message, retryable=False)
        try:
            sections: list[str] = []
            if isinstance(step, FormulaStep):  # inputs checked before any context work
                check_inputs(step.formula, job.bindings, self.machine.schemas)
                sections = _prompt_context(step.formula.name, self.extensions.prompt_context,
                                           job.ctx)
            prompt = _prompt_of(step, job.spec, self.machine, job.bindings, job.attempt_dir,
                                job.feedback, sections)
        except InputProblem as err:
            return ExecResult(), Outcome("error", error=str(err), retryable=False)
        from mgt.executors.mapping import map_model, map_tools

        polecat = step.polecat
        model = map_model(polecat.model.name if polecat is not None else None)
        tools = map_tools(polecat.tools.available, polecat=polecat.name) \
            if polecat is not None else ()
        request = self._request(job, prompt=prompt, model=model, tools=tools)
        atomic_write_text(job.attempt_dir / "prompt.md", _prompt_file(prompt))
        atomic_write_json(job.attempt_dir / "request.json", _request_json(request))
        result = self._executor("model").run(request)
        return result, self._classify(job.spec, job.ctx, result, parse_text=True)

    def _request(
        self,
        job: _Job,
        *,
        prompt: Prompt | None = None,
        model: str | None = None,
        tools: tuple[str, ...] = (),
        command: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> ExecRequest:
        return ExecRequest(
            run_id=self.journal.run_id,
            state=job.spec.name,
            attempt=job.attempt,
            prompt=prompt.text if prompt is not None else "",
            system_prompt=prompt.system_prompt if prompt is not None else None,
            model=model,
            tools=tools,
            output_schema=prompt.output_schema if prompt is not None else None,
            cwd=self.cwd,
            timeout_seconds=self._timeout(job.spec),
            attempt_dir=job.attempt_dir,
            inputs=jsonable(dict(job.bindings)),
            command=command,
            builtin=None,
            env=dict(env or {}),
        )

    def _executor(self, kind: str) -> Executor:
        with self._executor_lock:
            if kind not in self._executor_cache:
                if self._executors is None:
                    raise ExecutorError(f"no executor available for a {kind} step")
                self._executor_cache[kind] = self._executors(kind)
            return self._executor_cache[kind]

    # ------------------------------------------------------------------ fan-out

    def _run_fan_out(self, spec: StateSpec, attempt: int, attempt_dir: Path,
                     feedback: str | None) -> Outcome:
        """Run the state's items (one step per element of its list, or its branches), `max`
        at a time, and join them.

        Items finished earlier in this visit (journaled `item_finished`) are kept and not
        run again: after a kill, only the unfinished ones run.
        """
        from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

        jobs = self.fan_out_items(spec)
        if isinstance(jobs, Outcome):
            return jobs
        policy = policy_of(spec)
        results: dict[int, ItemFinished] = {
            i: ev for i, ev in self.run.visit.items.items() if i < len(jobs)}
        todo = [job for job in jobs if job.index not in results]
        control = FanOutControl(policy, failures(results.values()))
        if policy.stops(results.values()):
            control.stop.set()
        if results:
            self._emit_progress(spec.name, f"{len(results)} of {len(jobs)} items kept from "
                                "before; running the rest")
        workers = max(1, min(policy.max or len(todo), len(todo)))
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"mgt-{spec.name}")
        try:
            pending: set[Future[ItemFinished | None]] = {
                pool.submit(self._run_item, job, attempt, attempt_dir, feedback, control)
                for job in todo}
            while pending:
                # a timeout, so Ctrl-C and SIGTERM reach this thread while items run
                done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                for future in done:
                    event = future.result()
                    if event is None:
                        continue
                    results[event.index] = event
                    running = len(control.running)
                    self._emit_progress(spec.name, f"item {event.index}: {event.outcome} "
                                        f"({len(results)} of {len(jobs)} finished, "
                                        f"{running} running)")
                    if not control.stop.is_set() and policy.stops(results.values()):
                        control.cancel()
        except BaseException:
            control.interrupt()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        return join(spec, jobs, results)

    def fan_out_items(self, spec: StateSpec) -> list[FanOutItem] | Outcome:
        """The items of a fan-out (its list, evaluated now) or of a state of branches."""
        return items_of(spec, self.scope.names())

    def _run_item(self, job: FanOutItem, attempt: int, attempt_dir: Path, feedback: str | None,
                  control: FanOutControl) -> ItemFinished | None:
        """One item on a pool thread: its step, journaled as `item_started`/`item_finished`.

        Returns None when the run was interrupted: an item cut short is not finished and
        runs again on resume.
        """
        from mgt.executors.process import attempt_processes

        spec, index, key = job.spec, job.index, job.key
        if control.stop.is_set():
            return self._item_finished(spec, attempt, index, key, Outcome(
                "error", error="cancelled after an earlier item failed"), ExecResult(),
                control, cancelled=True)
        item_dir = attempt_dir / "items" / str(index)
        item_dir.mkdir(parents=True, exist_ok=True)
        self._emit(ItemStarted(state=spec.name, attempt=attempt, index=index, key=key))
        control.running.add(index)

        def started(pgid: int) -> None:
            control.started(index, pgid)
            self._emit(ProcessStarted(state=spec.name, attempt=attempt, pgid=pgid, item=index))

        result = ExecResult()
        try:
            bindings = self._bindings(spec, job.names)
            label = f"{spec.name}/{attempt}/{index}"
            with attempt_processes(self.journal.run_id, label, started):
                result, outcome = self._item_attempts(spec, attempt, item_dir, bindings,
                                                      feedback, control)
        except _StepError as err:
            outcome = err.outcome
        except TooDeep as err:
            outcome = Outcome("error", error=f"a value of item {index} is {err}",
                              retryable=False)
        except MgtError as err:
            outcome = Outcome("error", error=str(err))
        except Exception as err:  # a bug on a pool thread must not vanish with the thread
            outcome = Outcome("error", error=f"item {index}: {type(err).__name__}: {err}")
        finally:
            control.finished(index)
        return self._item_finished(spec, attempt, index, key, outcome, result, control,
                                   cancelled=index in control.cancelled)

    def _item_attempts(self, spec: StateSpec, attempt: int, item_dir: Path,
                       bindings: dict[str, Any], feedback: str | None,
                       control: FanOutControl) -> tuple[ExecResult, Outcome]:
        """An item's step, retried by the state's `retry` clauses (each item on its own);
        the cost of every try is counted."""
        from mgt.runtime.outcome import feedback_text

        used: dict[int, int] = {}
        spent = ExecResult(cost_usd=0.0, input_tokens=0, output_tokens=0)
        tries = 0
        while True:
            tries += 1
            step_dir = item_dir if tries == 1 else item_dir / f"try-{tries}"
            step_dir.mkdir(parents=True, exist_ok=True)
            result, outcome = self._dispatch(spec, attempt, step_dir, bindings, feedback)
            spent.cost_usd = (spent.cost_usd or 0.0) + (result.cost_usd or 0.0)
            spent.input_tokens = (spent.input_tokens or 0) + (result.input_tokens or 0)
            spent.output_tokens = (spent.output_tokens or 0) + (result.output_tokens or 0)
            retry = spec.retry_for(outcome.event) if outcome.retryable else None
            if retry is None or control.stop.is_set():
                break
            clause = spec.retries.index(retry)
            if used.get(clause, 0) >= retry.count:
                break
            used[clause] = used.get(clause, 0) + 1
            feedback = feedback_text(outcome, tries, timeout_seconds=self._timeout(spec),
                                     schema=spec.output_schema) if retry.feedback else None
            if retry.backoff_seconds and control.stop.wait(retry.backoff_seconds):
                break
        result.cost_usd, result.input_tokens, result.output_tokens = (
            spent.cost_usd, spent.input_tokens, spent.output_tokens)
        return result, outcome

    def _item_finished(self, spec: StateSpec, attempt: int, index: int, key: str | None,
                       outcome: Outcome, result: ExecResult, control: FanOutControl,
                       *, cancelled: bool) -> ItemFinished | None:
        if control.interrupted:
            return None
        outcome = _keepable(outcome)
        event = ItemFinished(
            state=spec.name, attempt=attempt, index=index, key=key,
            outcome="cancelled" if cancelled else outcome.event,
            output=jsonable(outcome.output) if not cancelled else None,
            error=("cancelled after an earlier item failed" if cancelled
                   else outcome.error or (outcome.problems[0] if outcome.problems else None)),
            cost_usd=round(result.cost_usd or 0.0, 8),
            input_tokens=result.input_tokens or 0,
            output_tokens=result.output_tokens or 0,
        )
        with self._emit_lock:
            if control.interrupted:
                return None
            stamped = self._emit(event, sync=False)
        control.counted(event.outcome)
        self.journal.sync_through(stamped.seq)  # out of the lock: a sync for many items
        return event

    def _run_builtin(self, name: str, ctx: StepContext) -> ExecResult:
        from mgt.extensions import resolve

        ref = self.extensions.builtins.get(name)
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
            from mgt.extensions import resolve

            problems: list[str] = []
            for ref in self.extensions.output_checks.get(schema or "", []):
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

    def _emit(self, event: Event, *, sync: bool = True) -> Event:
        """Journal `event`; a durable one is on disk when this returns (`sync=False`: when
        the caller's `journal.sync_through(seq)` returns). The sync is made outside the
        emit lock, so fan-out items finishing together share one."""
        with self._emit_lock:
            stamped = self.journal.emit(event, sync=False)
            if self._on_event is not None:
                self._on_event(stamped.to_json(), self.totals)
        if sync and stamped.type in DURABLE_EVENTS:
            self.journal.sync_through(stamped.seq)
        return stamped

    def _emit_progress(self, state: str, message: str) -> None:
        if self._on_event is not None:
            with self._emit_lock:
                self._on_event({"type": "progress", "state": state, "message": message},
                               self.totals)

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

    def _check_journal(self) -> None:
        """Refuse a journal that names states this machine does not declare."""
        known = set(self.machine.states) | set(self.machine.finals) | {IMPLICIT_FAIL}
        for event in self.run.events:
            names = [getattr(event, "state", None)]
            if isinstance(event, Transition):
                names = [event.source, event.target]
            for name in names:
                if isinstance(name, str) and name not in known:
                    raise JournalError(
                        f"run {self.journal.run_id}: its journal names state '{name}', which "
                        f"{self.machine.source_path} does not declare (seq {event.seq})"
                    )
        if self.run.started is None:
            raise JournalError(f"run {self.journal.run_id}: no run_started event; cannot resume")

    def _load_old_outputs(self) -> None:
        """Outputs the events do not hold (journals of older versions): from output.json; and
        outputs/ rewritten, since the process may have died before it did."""
        for name, attempt in list(self.run.outputs_on_disk.items()):
            path = self.journal.run_dir / "states" / name / str(attempt) / "output.json"
            try:
                self.run.outputs[name] = json.loads(path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                self.run.outputs[name] = None
            except (OSError, ValueError, RecursionError) as err:
                raise JournalError(f"cannot read {path}: {err}") from err
        for name, output in self.run.outputs.items():
            self.journal.write_output(name, output)


@dataclass(frozen=True)
class _Job:
    """One attempt as its runner sees it."""

    spec: StateSpec
    step: Step
    attempt: int
    attempt_dir: Path
    bindings: dict[str, Any]
    feedback: str | None
    ctx: StepContext


class FanOutControl:
    """What the items of one fan-out share: the stop flag and their running process groups."""

    def __init__(self, policy: Policy | None = None, failed: int = 0) -> None:
        self.stop = threading.Event()
        self.interrupted = False
        self.policy = policy
        self.failed = failed  # items of this visit that did not end `done`
        self.running: set[int] = set()
        self.cancelled: set[int] = set()
        self._groups: dict[int, int] = {}
        self._lock = threading.Lock()

    def started(self, index: int, pgid: int) -> None:
        with self._lock:
            self._groups[index] = pgid
            stopping = self.stop.is_set()
            if stopping:
                self.cancelled.add(index)
        if stopping:  # the policy stopped the fan-out while this item was forking
            _end_group(pgid)

    def counted(self, outcome: str) -> None:
        """An item ended with `outcome`: with `cancel on first failure`, one failure too many
        stops the rest at once, on the item's own thread, before its pool thread can take
        the next item (the joining thread would see it only on its next look)."""
        with self._lock:
            if outcome != "done":
                self.failed += 1
            stopping = (self.policy is not None and self.policy.cancel_on_failure
                        and self.failed > self.policy.tolerate and not self.stop.is_set())
        if stopping:
            self.cancel()

    def finished(self, index: int) -> None:
        with self._lock:
            self._groups.pop(index, None)
            self.running.discard(index)

    def cancel(self) -> None:
        """Stop the items: those not started are skipped, running ones are ended."""
        with self._lock:
            self.stop.set()
            groups = dict(self._groups)
            self.cancelled |= set(self.running)
        for pgid in groups.values():
            _end_group(pgid)

    def interrupt(self) -> None:
        """The run is interrupted: end every item's processes and journal none of them."""
        self.interrupted = True
        self.cancel()


def _end_group(pgid: int) -> None:
    from mgt.executors.process import kill_group

    kill_group(pgid, grace=2.0)


def _without_retries(spec: StateSpec) -> StateSpec:
    from dataclasses import replace

    return replace(spec, retries=())


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


def _keepable(outcome: Outcome) -> Outcome:
    """The outcome as the journal can keep it: an output nested too deep to journal (a hostile
    answer) is refused as `schema_invalid`, like any other answer of the wrong shape."""
    try:
        json.dumps(jsonable(outcome.output))
    except (ValueError, RecursionError):
        return Outcome("schema_invalid", problems=[
            f"the answer is nested more than {MAX_DEPTH} levels deep; answer with a flatter "
            "JSON object"])
    return outcome


def _prompt_context(formula: str, table: Mapping[str, list[str]], ctx: StepContext
                    ) -> list[str]:
    """PROMPT_CONTEXT sections for a formula's prompt (extensions compute them from the
    context)."""
    from mgt.extensions import resolve

    sections: list[str] = []
    for ref in table.get(formula, []):
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
    step = step_of(spec, machine.polecats, machine.formulas)
    if not isinstance(step, FormulaStep | PolecatStep):
        raise ValueError(f"state '{spec.name}' runs no model")
    return _prompt_of(step, spec, machine, bindings, file_dir, feedback, sections)


def _prompt_of(
    step: FormulaStep | PolecatStep,
    spec: StateSpec,
    machine: Machine,
    bindings: Mapping[str, Any],
    file_dir: Path | None,
    feedback: str | None,
    sections: list[str],
) -> Prompt:
    system = step.polecat.system_prompt if step.polecat is not None else None
    if isinstance(step, FormulaStep):
        return formula_prompt(
            step.formula,
            system,
            bindings,
            schema_name=spec.output_schema,
            schemas=machine.schemas,
            file_dir=file_dir,
            context_sections=sections,
            feedback=feedback,
        )
    return polecat_prompt(
        step.prompt,
        system,
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


def _now() -> str:
    from mgt.runtime.journal import now_iso

    return now_iso()
