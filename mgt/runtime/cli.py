"""`mgt exec | runs | show | resume` arguments → a run (or a view of runs) → an exit code.

Exit codes (docs/cli.md): 0 a `succeed` final, 1 a `fail` final, 2 bad usage or
bad input, 130 interrupted (SIGINT or SIGTERM; the run is resumable). Progress
goes to stderr, drawn with rich when stderr is a terminal; otherwise only the
final one-line summary is printed there. `--json` prints the summary object on
stdout. `mgt resume` on a finished run changes nothing, says so, and exits with
that run's own code (0 succeeded, 1 failed), so scripts see the same answer as
the original `mgt exec`. `exec` and `resume` share one launcher (`_launch`):
the interpreter with its executors and budget, SIGTERM as an interrupt, the
journal released, the report.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mgt.errors import JournalError, UsageError

if TYPE_CHECKING:
    from mgt.compile.model import Machine
    from mgt.executors.base import Executor
    from mgt.runtime.interpreter import RunResult, Totals
    from mgt.runtime.journal import RunJournal, RunRecord
    from mgt.runtime.slots import ModelSlots

__all__ = ["exec_main", "executor_factory", "live_progress", "needs_model", "report_result",
           "resume_main", "runs_main", "show_main"]


# --------------------------------------------------------------------------- mgt exec


def exec_main(args: argparse.Namespace) -> int:
    from mgt.runtime.inputs import load_inputs_file, parse_input_args, resolve_inputs

    if getattr(args, "each", None):  # one run per line of a file: mgt.runtime.each
        from mgt.runtime.each import each_main

        return each_main(args)
    _check_budget(args.budget_usd)
    requested, options = _executor_options(args)
    cli_values = parse_input_args(args.input)
    file_values: dict[str, Any] = {}
    file_dir: Path | None = None
    if args.inputs:
        file_values = load_inputs_file(args.inputs)
        file_dir = Path(args.inputs).resolve().parent
    machine = _load_machine(args.file)
    inputs = resolve_inputs(machine, cli=cli_values, file_values=file_values, file_dir=file_dir)

    if args.dry_run:
        from mgt.runtime.preview import preview_machine

        sys.stdout.write(preview_machine(machine, inputs))
        return 0

    executor_name = _executor_name(machine, requested, options)
    if getattr(args, "engine", "file") == "temporal":  # attempts run on `mgt worker`s
        from mgt.engines.temporal.client import exec_temporal

        return exec_temporal(args, machine, inputs, executor_name, options)
    factory = executor_factory(executor_name, options, check=needs_model(machine),
                                slots=_slots(args, machine))

    from mgt.runtime.interpreter import run_info
    from mgt.runtime.journal import RunJournal

    info = run_info(machine, inputs, budget_usd=args.budget_usd, cwd=Path.cwd())
    journal = RunJournal.create_new(
        args.runs_dir, machine.name,
        {**info, "executor": executor_name, "executor_options": options},
    )
    return _launch(machine, journal, inputs, factory, args.budget_usd, None, args.json,
                   resume=False)


def _launch(
    machine: Machine,
    journal: RunJournal,
    inputs: dict[str, Any],
    factory: Callable[[str], Executor],
    budget: float | None,
    cwd: Path | None,
    as_json: bool,
    *,
    resume: bool,
) -> int:
    """The one way a run is driven from the command line (exec and resume): the interpreter
    with its executors and budget, SIGTERM as an interrupt, the journal released, a report."""
    from mgt.runtime.interpreter import Interpreter

    try:
        try:
            interp = Interpreter(machine, journal, inputs, executors=factory, budget_usd=budget,
                                 cwd=cwd, on_event=live_progress(journal.run_id))
        except BaseException:
            if not resume:  # nothing ran: leave no husk
                shutil.rmtree(journal.run_dir, ignore_errors=True)
            raise
        with _terminate_as_interrupt():
            result = interp.resume() if resume else interp.start()
    finally:
        journal.close()
    return report_result(result, as_json, machine)


# --------------------------------------------------------------------------- mgt resume


def resume_main(args: argparse.Namespace) -> int:
    from mgt.runtime.inputs import resolve_inputs
    from mgt.runtime.journal import RunJournal, run_summary

    _check_budget(args.budget_usd)
    requested, options = _executor_options(args)  # a bad --executor: before taking the run
    journal = RunJournal.open(args.runs_dir, args.run_id)
    try:
        run = journal.state
        if run.finished is not None:
            print(
                f"mgt: run {journal.run_id} already finished ({run.status} at "
                f"'{run.final}'); nothing to resume",
                file=sys.stderr,
            )
            if args.json:
                record = journal.record()
                print(json.dumps(run_summary(record.run_id, run.status, run, record.outputs()),
                                 ensure_ascii=False))
            return 0 if run.status == "succeeded" else 1
        info = journal.info
        if info.get("engine") == "temporal":  # the server kept running it: follow it again
            from mgt.engines.temporal.client import resume_temporal

            try:
                return resume_temporal(args, journal)
            finally:
                journal.close()
        machine_info = info.get("machine") or {}
        path = machine_info.get("path")
        if not path:
            raise JournalError(f"run {journal.run_id}: run.json names no machine file")
        if not Path(path).is_file():
            raise JournalError(
                f"run {journal.run_id}: its machine file {path} no longer exists; "
                "restore it to resume"
            )
        machine = _load_machine(path)
        if machine_info.get("sha256") and machine.source_hash != machine_info["sha256"]:
            raise JournalError(
                f"run {journal.run_id}: {path} changed since the run started "
                f"(sha256 {str(machine_info['sha256'])[:12]}… → {machine.source_hash[:12]}…); "
                "restore it, or start a new run with mgt exec"
            )
        _check_definitions(journal.run_id, info.get("definitions") or {}, machine)
        inputs = resolve_inputs(machine, stored=info.get("inputs") or {})
        requested, options = _executor_options(args, info.get("executor_options"))
        executor_name = requested or info.get("executor") or _executor_name(machine, None, options)
        factory = executor_factory(executor_name, options, check=needs_model(machine),
                                    slots=_slots(args, machine))
        budget = args.budget_usd if args.budget_usd is not None else info.get("budget_usd")
        cwd = Path(info["cwd"]) if info.get("cwd") and Path(info["cwd"]).is_dir() else None
        if args.executor or options != info.get("executor_options"):
            journal.write_info(executor=executor_name, executor_options=options)
        if budget != info.get("budget_usd"):
            journal.write_info(budget_usd=budget)
    except BaseException:
        journal.close()
        raise
    return _launch(machine, journal, inputs, factory, budget, cwd, args.json, resume=True)


def _check_definitions(run_id: str, pinned: dict[str, Any], machine: Machine) -> None:
    """Refuse to resume when a definition file the run loaded changed or went away: the rest
    of the run would follow other prompts, schemas or models than its start."""
    from mgt.runtime.journal import sha256_file

    for path, digest in sorted(pinned.items()):
        try:
            now = sha256_file(path)
        except OSError:
            now = None
        if now != digest:
            what = "no longer exists" if now is None else "changed since the run started"
            raise UsageError(
                f"run {run_id}: {path} {what}; restore it to resume, or start a new run "
                "with mgt exec"
            )
    for path in sorted(set(machine.definitions) - set(pinned)):
        if pinned:  # a run of an older version pinned nothing: nothing to compare
            raise UsageError(
                f"run {run_id}: {path} is loaded now but was not when the run started; "
                "remove it to resume, or start a new run with mgt exec"
            )


# --------------------------------------------------------------------------- mgt runs / show


def runs_main(args: argparse.Namespace) -> int:
    from mgt.runtime.journal import list_runs

    records = list_runs(args.runs_dir)
    if args.json:
        rows = [_run_row(r) for r in records]
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    if not records:
        print(f"no runs in {args.runs_dir}", file=sys.stderr)
        return 0
    header = ("RUN", "MACHINE", "STATUS", "STATE", "STATES", "COST", "STARTED")
    lines: list[tuple[str, ...]] = [header]
    for r in records:
        info = _run_row(r)
        lines.append((
            info["run_id"],
            info["machine"] or "?",
            info["status"],
            info["final"] or info["current_state"] or "",
            str(len(info["path"]) - (1 if info["final"] else 0)),
            f"${info['cost_usd']:.4f}",
            (info["created"] or "")[:19].replace("T", " "),
        ))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    right = {4, 5}
    for line in lines:  # plain columns: readable in a terminal, greppable in a pipe
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in
                 enumerate(zip(line, widths, strict=True))]
        print("  ".join(cells).rstrip())
    for r in records:
        if r.problem:
            print(f"mgt: run {r.run_id} is corrupt: {r.problem}", file=sys.stderr)
    return 0


def show_main(args: argparse.Namespace) -> int:
    from mgt.runtime.journal import load_run

    record = load_run(args.runs_dir, args.run_id)
    data = _show_data(record)
    if args.json:
        print(json.dumps(data, indent=2, ensure_ascii=False))
        return 0
    from rich.markup import escape

    from mgt.console import out_console

    con = out_console()
    from mgt.runtime.report import output_schemas, render_costs, render_outputs

    con.print(f"[bold]run {record.run_id}[/]  {_status_markup(record.status)}")
    name, where = escape(str(data["machine"] or "?")), escape(str(data["machine_path"]))
    con.print(f"machine  {name}  ({where})")
    if data["inputs"]:
        shown = ", ".join(f"{k}={json.dumps(v)}" for k, v in data["inputs"].items())
        con.print(f"inputs   {escape(shown)}")
    con.print(f"path     {escape(' → '.join(record.path) or '(not started)')}")
    if record.final:
        msg = data.get("message")
        con.print(f"final    {escape(record.final)}" + (f": {escape(str(msg))}" if msg else ""))
        cause = record.run.failure_cause() if record.status == "failed" else None
        if cause:
            con.print(f"cause    {escape(cause)}")
    con.print(
        f"cost     ${record.cost_usd:.4f} · tokens {record.input_tokens:,} in / "
        f"{record.output_tokens:,} out"
    )
    schemas = output_schemas(record)
    summarized = {name for name, schema in schemas.items() if schema in _summary_schemas()}
    for state in data["states"]:
        con.print()
        con.print(
            f"[bold]{escape(state['state'])}[/]  {len(state['attempts'])} attempt(s), "
            f"${state['cost_usd']:.4f}"
        )
        for att in state["attempts"]:
            outcome = att["outcome"] or "did not finish"
            line = f"  #{att['attempt']} {outcome}"
            if att["cost_usd"]:
                line += f"  ${att['cost_usd']:.4f}"
            if att["error"]:
                line += f"  {att['error']}"
            con.print(escape(line))
        for item in state.get("items", []):  # a fan-out's items, by index
            key = f" {item['key']}" if item.get("key") is not None else ""
            line = f"  [{item['index']}]{key} {item['outcome']}"
            line += f"  ${item['cost_usd']:.4f}" if item.get("cost_usd") else ""
            line += f"  {item['error']}" if item.get("error") else ""
            con.print(escape(line))
        if state["output"] is not None and state["state"] not in summarized:
            text = json.dumps(state["output"], indent=2, ensure_ascii=False)
            lines = text.splitlines()
            if len(lines) > 40:
                lines = [*lines[:40], f"... ({len(lines) - 40} more lines in outputs/"
                         f"{state['state']}.json)"]
            con.print(escape("  output: " + "\n  ".join(lines)))
        if state["state"] in summarized and state["output"] is not None:
            con.print(f"  output: outputs/{escape(state['state'])}.json (summary below)")
    if summarized:
        con.print()
        render_outputs(record, schemas, con)
    con.print()
    render_costs(record, con)
    if record.status == "interrupted":
        con.print(f"\nresume with: mgt resume {record.run_id}")
    return 0


def _summary_schemas() -> set[str]:
    from mgt.extensions import OUTPUT_SUMMARIES

    return set(OUTPUT_SUMMARIES)


def _run_row(record: RunRecord) -> dict[str, Any]:
    info = record.info
    machine = info.get("machine") or {}
    return {
        "run_id": record.run_id,
        "machine": machine.get("name"),
        "status": record.status,
        "final": record.final,
        "current_state": record.current_state,
        "path": record.path,
        "cost_usd": round(record.cost_usd, 6),
        "tokens": {"input": record.input_tokens, "output": record.output_tokens},
        "created": info.get("created"),
        "updated": info.get("updated"),
        **({"problem": record.problem} if record.problem else {}),
    }


def _items_of(state: Any, status: str) -> list[dict[str, Any]]:
    """A fan-out state's items for `mgt show`: finished ones with their result, and those
    in flight as `running` (`did not finish` in a run that is not running)."""
    items = {i: {**ev.result(), "cost_usd": round(ev.cost_usd, 6)}
             for i, ev in state.items.items()}
    for i in state.items_running:
        items[i] = {"index": i, "outcome": "running" if status == "running"
                    else "did not finish"}
    return [items[i] for i in sorted(items)]


def _show_data(record: RunRecord) -> dict[str, Any]:
    info = record.info
    machine = info.get("machine") or {}
    states = []
    for name, state in record.states.items():
        states.append({
            "state": name,
            "visits": state.visits,
            "cost_usd": round(state.cost_usd, 6),
            "tokens": {"input": state.input_tokens, "output": state.output_tokens},
            "attempts": [
                {
                    "attempt": a.attempt,
                    "outcome": a.outcome,
                    "cost_usd": round(a.cost_usd, 6),
                    "tokens": {"input": a.input_tokens, "output": a.output_tokens},
                    "error": a.error,
                    "started": a.started,
                    "finished": a.finished,
                }
                for a in state.attempts
            ],
            "output": state.output,
            **({"items": _items_of(state, record.status)}
               if state.items or state.items_running else {}),
        })
    return {
        **record.summary(),
        "machine": machine.get("name"),
        "machine_path": machine.get("path"),
        "machine_sha256": machine.get("sha256"),
        "inputs": info.get("inputs") or {},
        "message": record.run.message,
        "created": info.get("created"),
        "updated": info.get("updated"),
        "transitions": [
            {"from": f, "event": e, "to": t} for f, e, t in record.transitions
        ],
        "states": states,
        "run_dir": str(record.run_dir),
    }


# --------------------------------------------------------------------------- shared plumbing


def _load_machine(path: str) -> Machine:
    """Check and compile a machine; a CheckError goes up to `mgt.cli`, which renders it."""
    from mgt.compile import load_machine

    return load_machine(path)


def _check_budget(budget: float | None) -> None:
    if budget is not None and not 0 <= budget < float("inf"):
        raise UsageError(f"--budget-usd: expected a non-negative amount, got {budget}")


def needs_model(machine: Machine) -> bool:
    """A model state here, in a branch, or in a machine a state runs (at any depth)."""
    from mgt.compile.model import MachineStep

    specs = [spec for s in machine.states.values() for spec in (s, *(b for _, b in s.branches))]
    return any(spec.run.kind in {"formula", "polecat"}
               or (isinstance(spec.step, MachineStep) and needs_model(spec.step.machine))
               for spec in specs)


def _executor_name(
    machine: Machine, requested: str | None, options: dict[str, Any] | None = None
) -> str | None:
    """The model executor to use, checked before the run starts (None: no model state).

    `--executor` wins; then the project's `mgt.toml` `[exec].executor`; then
    zellij-cc in a zellij session or Claude Code when installed. When no model is
    configured (nothing installed, or Claude Code without credentials) and the
    project names `[exec].offline_replay_dir`, the run replays those recorded
    answers and says so on stderr. `options` receives the replay directory.
    """
    if requested:
        return requested
    if not needs_model(machine):
        return None
    from mgt.executors import default_executor_name, model_credentials_configured
    from mgt.runtime.project import load_exec_settings

    settings = load_exec_settings(machine.source_path)
    if settings.executor:
        if settings.replay_dir is not None and options is not None:
            options.setdefault("replay_dir", str(settings.replay_dir))
        return settings.executor
    try:
        name = default_executor_name()
    except UsageError:
        if settings.offline_replay_dir is None:
            raise
        why = "no zellij session and no Claude Code installed"
    else:
        if name != "claude" or model_credentials_configured() or not settings.offline_replay_dir:
            return name
        why = "Claude Code has no credentials (ANTHROPIC_API_KEY or a login)"
    if options is not None:
        options["replay_dir"] = str(settings.offline_replay_dir)
    print(
        f"mgt: offline: {why}, so model states replay the recorded answers in "
        f"{settings.offline_replay_dir} ([exec].offline_replay_dir of {settings.file}); "
        "configure a model to run for real",
        file=sys.stderr,
    )
    return "replay"


def _executor_options(
    args: argparse.Namespace, stored: Any = None
) -> tuple[str | None, dict[str, Any]]:
    """(--executor, its options) from the command line, else as the run was started.

    `replay:DIR` becomes `replay` with an absolute `replay_dir`, so a resume from
    another directory finds the same recordings.
    """
    name: str | None = args.executor
    if name == "command":  # it runs `run command` states; a model state would fail every time
        raise UsageError("--executor command: 'command' runs only `run command` states, which "
                         "use it anyway; choose a model executor: zellij-cc, claude, tmux or "
                         "replay[:DIR]")
    options: dict[str, Any] = dict(stored) if isinstance(stored, dict) else {}
    if getattr(args, "session", None):
        options["session"] = args.session
    if getattr(args, "replay_dir", None):
        options["replay_dir"] = str(Path(args.replay_dir).resolve())
    if name and name.startswith("replay:"):
        directory = name.split(":", 1)[1]
        if not directory.strip():  # Path("") would be the current directory
            raise UsageError("--executor replay:DIR needs a directory after the colon")
        name, options["replay_dir"] = "replay", str(Path(directory).resolve())
    return name, {k: v for k, v in options.items() if k in {"session", "replay_dir"} and v}


def _slots(args: argparse.Namespace, machine: Machine) -> ModelSlots:
    from mgt.runtime.slots import model_slots

    return model_slots(args.runs_dir, getattr(args, "max_model_calls", None),
                       machine.source_path)


def executor_factory(
    name: str | None, options: dict[str, Any], *, check: bool = False,
    slots: ModelSlots | None = None,
) -> Callable[[str], Executor]:
    """kind ("model" | "command") → an executor; the model one is built (and checked) now.

    With `check` (the machine has model states) the executor's program, and the zellij
    session it needs, are looked up now: a missing one is one line and exit 2 before any
    run exists, not an error outcome of the first model state. With `slots`, every model
    call holds one of the runs directory's model slots (`mgt.runtime.slots`).
    """
    from mgt.executors import make_executor

    model: Executor | None = make_executor(name, **options) if name else None
    if check and model is not None:
        for needed in ("program", "session"):  # properties that find them or raise
            getattr(model, needed, None)

    def capped(executor: Executor) -> Executor:
        if slots is None:
            return executor
        from mgt.runtime.slots import SlotExecutor

        return SlotExecutor(executor, slots)

    model = capped(model) if model is not None else None

    def factory(kind: str) -> Executor:
        if kind == "command":
            return make_executor("command")
        if model is None:
            from mgt.executors import default_executor_name

            return capped(make_executor(default_executor_name(), **options))
        return model

    return factory


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM stops a run like Ctrl-C does: journaled as interrupted, resumable, exit 130."""
    from mgt.runtime.interpreter import Interrupted

    def handler(signum: int, frame: Any) -> None:
        raise Interrupted("terminated")

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def report_result(result: RunResult, as_json: bool, machine: Machine | None = None) -> int:
    """The end of a run: the report (or `--json` object) on stdout, one line on stderr."""
    if as_json:
        print(json.dumps(result.summary(), ensure_ascii=False))
    elif result.status != "interrupted":
        from mgt.console import out_console
        from mgt.runtime.journal import load_run
        from mgt.runtime.report import output_schemas, render_costs, render_outputs

        record = load_run(result.run_dir.parent, result.run_id)
        con = out_console()
        render_outputs(record, output_schemas(record, machine), con)
        render_costs(record, con)
    cause = result.run.failure_cause() if result.status == "failed" else None
    print(_summary_line(result, cause), file=sys.stderr)
    return result.exit_code


def _summary_line(result: RunResult, cause: str | None = None) -> str:
    t = result.totals
    cost = f"${t.cost_usd:.4f}, {t.input_tokens:,} in / {t.output_tokens:,} out tokens"
    states = sum(1 for _ in result.path) - (1 if result.final else 0)
    if result.status == "interrupted":
        where = result.path[-1] if result.path else "the start"
        return (
            f"mgt: run {result.run_id} interrupted in state '{where}' ({cost}); "
            f"continue with: mgt resume {result.run_id}"
        )
    message = f": {result.message}" if result.message else ""
    why = f"; {cause}" if cause else ""
    return (
        f"mgt: run {result.run_id} {result.status} at '{result.final}'{message}{why} "
        f"({states} state(s), {cost})"
    )


def _status_markup(status: str) -> str:
    color = {"succeeded": "green", "failed": "red", "interrupted": "yellow"}.get(status, "cyan")
    return f"[{color}]{status}[/]"


def live_progress(run_id: str) -> Callable[[dict[str, Any], Totals], None] | None:
    """Live progress on stderr (rich) when it is a terminal; nothing otherwise."""
    from mgt.console import err_console, stderr_is_tty

    if not stderr_is_tty():
        return None
    from rich.markup import escape

    con = err_console()
    con.print(f"[dim]run {run_id}[/]")
    spinner: list[Any] = []  # the live "running..." line of the attempt under way

    def stop_spinner() -> None:
        while spinner:
            spinner.pop().stop()

    def show(event: dict[str, Any], totals: Totals) -> None:
        kind = event.get("type")
        state = escape(str(event.get("state", "")))
        if kind in {"attempt_finished", "run_interrupted", "run_finished"}:
            stop_spinner()
        if kind == "state_entered" and not event.get("final"):
            con.print(f"[bold]▶ {state}[/]")
        elif kind == "attempt_started":
            if int(event.get("attempt", 1)) > 1:
                con.print(f"  attempt {event['attempt']} …")
            status = con.status(f"[dim]{state}: running {escape(str(event.get('kind', '')))}"
                                f" (spent so far ${totals.cost_usd:.4f})[/]")
            status.start()
            spinner.append(status)
        elif kind == "attempt_finished":
            outcome = str(event.get("outcome"))
            mark = "[green]✓[/]" if outcome == "done" else "[red]✗[/]"
            detail = f": {escape(str(event['error']))}" if event.get("error") else ""
            spent = float(event.get("cost_usd") or 0.0)
            money = f"  ${spent:.4f} (total ${totals.cost_usd:.4f})" if spent else ""
            con.print(f"  {mark} {escape(outcome)}{detail}{money}")
        elif kind == "backoff":
            con.print(f"  [dim]waiting {event.get('seconds')}s before retrying[/]")
        elif kind == "transition":
            guard = f" [dim]when {escape(str(event['guard']))}[/]" if event.get("guard") else ""
            con.print(f"  → {escape(str(event.get('to')))}{guard}")
        elif kind == "progress":
            con.print(f"  [dim]{escape(str(event.get('message')))}[/]")

    return show
