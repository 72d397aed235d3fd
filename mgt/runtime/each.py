"""`mgt exec FILE --each INPUTS.jsonl` → one run per line, up to `--parallel` at once → a table.

Every non-blank line of INPUTS.jsonl is a JSON object of input names to values
(`--input K=V` values apply to every run and win over the line's, as they win
over an `--inputs` file). All lines are read and checked against the machine's
inputs before anything starts: each bad line is reported as `FILE:LINE: what is
wrong`, and then mgt exits 2 with no run started.

Each run is a child process forked from this one once the machine is checked,
so a run costs no interpreter start-up and no re-check, and each child is a
whole `mgt exec` on its own: its own journal and lock, its own signal handling,
resumable alone with `mgt resume RUN_ID`. Every model call of every run holds
one of the runs directory's model slots (`mgt.runtime.slots`), so the cap holds
across all of them and across any other mgt using the same directory.

As each run ends, one line on stderr (the run's own summary line, after `line
N:`); at the end a table on stdout (or, with `--json`, one object). Exit 0 when
every run succeeded, 1 otherwise, 130 when interrupted: Ctrl-C or SIGTERM stops
starting runs and asks each run under way to stop (it is journaled as
interrupted, resumable); a second one kills them. Children run in process
groups of their own, so a terminal's Ctrl-C reaches only this process, which
tells each child once; and they get SIGTERM should this process die.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import signal
import sys
import tempfile
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from mgt.errors import MgtError, UsageError

if TYPE_CHECKING:
    from mgt.compile.model import Machine
    from mgt.executors.base import Executor

__all__ = ["EachLine", "EachResult", "each_main", "read_each_file", "run_lines"]

#: At most this many bad lines are listed before "and N more".
MAX_LISTED = 20
_SIGNALS = {signal.SIGINT, signal.SIGTERM}


@dataclass(frozen=True)
class EachLine:
    number: int  # 1-based line number in the inputs file
    inputs: dict[str, Any]  # typed, resolved against the machine


@dataclass
class EachResult:
    line: int
    status: str  # succeeded | failed | interrupted | error | not started
    run_id: str | None = None
    final: str | None = None
    exit_code: int | None = None
    cost_usd: float = 0.0
    message: str | None = None  # the run's summary line, or the error that stopped it

    def to_json(self) -> dict[str, Any]:
        return {"line": self.line, "run_id": self.run_id, "status": self.status,
                "final": self.final, "exit_code": self.exit_code,
                "cost_usd": round(self.cost_usd, 6), "message": self.message}


# --------------------------------------------------------------------------- the inputs file


def read_each_file(path: Path, machine: Machine, cli_values: Mapping[str, str]) -> list[EachLine]:
    """Every line's inputs, checked; UsageError (after printing each bad line) if any is bad."""
    from mgt.runtime.inputs import resolve_inputs
    from mgt.runtime.strict_json import loads

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"--each {path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"--each {path}: is a directory, expected a .jsonl file") from None
    except UnicodeDecodeError as err:
        raise UsageError(f"--each {path}: not UTF-8 text ({err.reason})") from None
    except OSError as err:
        raise UsageError(f"--each {path}: cannot read it: {err.strerror or err}") from None
    lines: list[EachLine] = []
    problems: list[str] = []
    base = path.resolve().parent
    # split on "\n" only: str.splitlines would also split inside a line at \x1c, \u2028...
    for number, raw in enumerate(text.split("\n"), 1):
        raw = raw.removesuffix("\r")
        if not raw.strip():
            continue
        where = f"{path}:{number}"
        try:
            value = loads(raw)
        except json.JSONDecodeError as err:
            problems.append(f"{where}:{err.colno}: invalid JSON: {err.msg}")
            continue
        except ValueError as err:
            problems.append(f"{where}: invalid JSON: {err}")
            continue
        if not isinstance(value, dict):
            kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
            got = kind.get(type(value), "a number")
            problems.append(f"{where}: expected a JSON object of input names to values, got {got}")
            continue
        try:
            inputs = resolve_inputs(machine, cli=cli_values, file_values=value, file_dir=base)
        except UsageError as err:  # said of the line itself, not of an --inputs file
            problems.append(f"{where}: {str(err).replace(' in --inputs file', '')}")
            continue
        lines.append(EachLine(number, inputs))
    if problems:
        for problem in problems[:MAX_LISTED]:
            print(f"mgt: {problem}", file=sys.stderr)
        more = len(problems) - MAX_LISTED
        if more > 0:
            print(f"mgt: … and {more} more bad line(s)", file=sys.stderr)
        raise UsageError(f"--each {path}: {len(problems)} bad line(s); no run was started")
    if not lines:
        raise UsageError(f"--each {path}: no inputs (the file has no non-blank line)")
    return lines


# --------------------------------------------------------------------------- mgt exec --each


def each_main(args: argparse.Namespace) -> int:
    from mgt.runtime import cli as launcher
    from mgt.runtime.inputs import parse_input_args

    if args.dry_run:
        raise UsageError("--each cannot be combined with --dry-run: preview one run with "
                         "--inputs or --input instead")
    if args.inputs:
        raise UsageError("--each cannot be combined with --inputs: give values shared by every "
                         "run with --input K=V, or put them in every line")
    launcher._check_budget(args.budget_usd)
    requested, options = launcher._executor_options(args)
    cli_values = parse_input_args(args.input)
    machine = launcher._load_machine(args.file)
    lines = read_each_file(Path(args.each), machine, cli_values)
    executor_name = launcher._executor_name(machine, requested, options)
    slots = launcher._slots(args, machine)
    factory = launcher.executor_factory(executor_name, options,
                                         check=launcher.needs_model(machine), slots=slots)
    print(f"mgt: {len(lines)} run(s) of {machine.name}, {args.parallel} at a time, at most "
          f"{slots.cap} model call(s) at once in {args.runs_dir}", file=sys.stderr)

    def one(line: EachLine) -> int:
        return _one_run(machine, line, factory, executor_name, options, args)

    _preload(machine)
    started = time.monotonic()
    results, interrupted = run_lines(lines, args.parallel, one, say=_say)
    elapsed = time.monotonic() - started
    if args.json:
        print(json.dumps(_json_summary(results, elapsed), ensure_ascii=False))
    else:
        _print_table(results, elapsed)
    if interrupted:
        return 130
    return 0 if all(r.status == "succeeded" for r in results) else 1


def _preload(machine: Machine) -> None:
    """Do now what every run does first (imports, its chart's first build, ~50 ms): once
    here, inherited by every child, not once per child."""
    import importlib

    from mgt.compile.chart import build_chart

    for module in ("mgt.runtime.interpreter", "mgt.runtime.journal", "mgt.runtime.outcome",
                   "mgt.runtime.prompt", "mgt.runtime.report", "mgt.executors.process",
                   "mgt.executors.mapping", "mgt.executors.command", "jsonschema"):
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
    build_chart(machine)


def _one_run(machine: Machine, line: EachLine, factory: Callable[[str], Executor],
             executor_name: str | None, options: dict[str, Any], args: argparse.Namespace
             ) -> int:
    """In the child: one `mgt exec` of the line's inputs (the JSON summary on stdout)."""
    from mgt.runtime import cli as launcher
    from mgt.runtime.interpreter import run_info
    from mgt.runtime.journal import RunJournal

    info = run_info(machine, line.inputs, budget_usd=args.budget_usd, cwd=Path.cwd())
    journal = RunJournal.create_new(
        args.runs_dir, machine.name,
        {**info, "executor": executor_name, "executor_options": options},
    )
    print(json.dumps({"run_id": journal.run_id}), flush=True)  # known even if it dies
    return launcher._launch(machine, journal, line.inputs, factory, args.budget_usd, None,
                            True, resume=False)


# --------------------------------------------------------------------------- running them


class _Stop(Exception):
    """SIGINT or SIGTERM reached the launcher."""


def run_lines(
    lines: list[EachLine],
    parallel: int,
    one: Callable[[EachLine], int],
    *,
    say: Callable[[EachResult, int, int], None] | None = None,
) -> tuple[list[EachResult], bool]:
    """Run `one(line)` for every line in forked children, `parallel` at once; the results in
    line order and whether a signal stopped it."""
    results: dict[int, EachResult] = {}
    pending = deque(lines)
    running: dict[int, EachLine] = {}
    interrupted = False
    total = len(lines)
    with tempfile.TemporaryDirectory(prefix="mgt-each-") as tmp:
        work = Path(tmp)

        def reap() -> None:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:  # a signal came between a wait and its bookkeeping
                for line in list(running.values()):
                    finish(line, 1)  # exit status lost: what the child left says the rest
                running.clear()
                return
            found = running.pop(pid, None)
            if found is not None:
                finish(found, os.waitstatus_to_exitcode(status))

        def finish(line: EachLine, code: int) -> None:
            result = _collect(line, code, work)
            results[line.number] = result
            if say is not None:
                say(result, len(results), total)

        with _stop_on_signals():
            try:
                while pending or running:
                    while pending and len(running) < parallel:
                        line = pending.popleft()
                        running[_fork(line, one, work)] = line
                    reap()
            except _Stop:
                interrupted = True
                _signal_all(running, signal.SIGTERM)
            while running:  # a run told to stop journals that it was interrupted, then exits
                try:
                    reap()
                except _Stop:  # asked again: stop now (a killed run is resumable as well)
                    _signal_all(running, signal.SIGKILL)
    for line in pending:
        results[line.number] = EachResult(line.number, "not started")
    return [results[n] for n in sorted(results)], interrupted


def _signal_all(running: Mapping[int, EachLine], sig: signal.Signals) -> None:
    for pid in running:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[None]:
    def handler(signum: int, frame: Any) -> None:
        raise _Stop(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handler) for sig in _SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _fork(line: EachLine, one: Callable[[EachLine], int], work: Path) -> int:
    """Start the child for `line`; signals wait until its pid is recorded (none is lost)."""
    for stream in (sys.stdout, sys.stderr):  # else the child would write our buffer again
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    parent = os.getpid()
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    try:
        pid = os.fork()
        if pid == 0:
            _child(line, one, work, parent, mask)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    return pid


def _child(line: EachLine, one: Callable[[EachLine], int], work: Path, parent: int,
           mask: set[int | signal.Signals]) -> NoReturn:
    code = 2
    try:
        os.setpgid(0, 0)  # a terminal's Ctrl-C goes to the launcher, which tells us once
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _die_with(parent)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        for fd, suffix in ((1, "out"), (2, "err")):
            target = os.open(work / f"{line.number}.{suffix}",
                             os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(target, fd)
            os.close(target)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        try:
            code = one(line)
        except MgtError as err:
            from mgt.cli import render_check_error
            from mgt.errors import CheckError

            text = render_check_error(err) if isinstance(err, CheckError) else f"mgt: {err}"
            print(text, file=sys.stderr)
            code = err.exit_code
        except KeyboardInterrupt:
            print("mgt: interrupted", file=sys.stderr)
            code = 130
    except BaseException:  # a bug: said in the line's result, never a hung launcher
        with contextlib.suppress(BaseException):
            traceback.print_exc()
        code = 2
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(BaseException):
                stream.flush()
        os._exit(code)


def _die_with(parent: int) -> None:
    """On Linux, SIGTERM when the launcher dies (even by kill -9): the run stops as it would
    on Ctrl-C, journaled as interrupted, rather than run on unwatched."""
    with contextlib.suppress(OSError, AttributeError, TypeError):
        # the process's own symbols (libc's among them): no find_library, which runs programs
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it died before that took effect
        os._exit(130)


def _collect(line: EachLine, code: int, work: Path) -> EachResult:
    """What a finished child left: its JSON summary on stdout, its last line on stderr."""
    summary: dict[str, Any] = {}
    run_id: str | None = None
    out = _read(work / f"{line.number}.out")
    for text in out.splitlines():
        with contextlib.suppress(ValueError, RecursionError):
            value = json.loads(text)
            if isinstance(value, dict):
                summary = value
                run_id = value.get("run_id") if isinstance(value.get("run_id"), str) else run_id
    err_lines = [t.strip() for t in _read(work / f"{line.number}.err").splitlines() if t.strip()]
    last = err_lines[-1].removeprefix("mgt: ") if err_lines else None
    status = summary.get("status")
    if status not in {"succeeded", "failed", "interrupted"}:
        status = "interrupted" if code in (130, -signal.SIGTERM, -signal.SIGKILL) and run_id \
            else "error"
    if last is None and code < 0:
        last = f"killed by {signal.Signals(-code).name}"
    elif last is None and code != 0:
        last = f"exited with {code}"
    cost = summary.get("cost_usd")
    for suffix in ("out", "err"):
        with contextlib.suppress(OSError):
            (work / f"{line.number}.{suffix}").unlink()
    return EachResult(
        line=line.number,
        status=str(status),
        run_id=run_id,
        final=summary.get("final") if isinstance(summary.get("final"), str) else None,
        exit_code=code,
        cost_usd=float(cost) if isinstance(cost, int | float) else 0.0,
        message=last,
    )


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


# --------------------------------------------------------------------------- the report


def _say(result: EachResult, done: int, total: int) -> None:
    what = result.message or result.status
    print(f"mgt: [{done}/{total}] line {result.line}: {what}", file=sys.stderr, flush=True)


def _counts(results: list[EachResult]) -> dict[str, int]:
    counts = {k: 0 for k in ("succeeded", "failed", "interrupted", "error", "not started")}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    return counts


def _json_summary(results: list[EachResult], elapsed: float) -> dict[str, Any]:
    counts = _counts(results)
    return {
        "runs": [r.to_json() for r in results],
        "total": len(results),
        **{k.replace(" ", "_"): v for k, v in counts.items()},
        "cost_usd": round(sum(r.cost_usd for r in results), 6),
        "seconds": round(elapsed, 3),
    }


def _print_table(results: list[EachResult], elapsed: float) -> None:
    rows = [["line", "run", "status", "final", "cost"]]
    for r in results:
        rows.append([str(r.line), r.run_id or "-", r.status, r.final or "-", f"${r.cost_usd:.4f}"])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [c.rjust(w) if i in (0, 4) else c.ljust(w)
                 for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        print("  ".join(cells).rstrip())
    counts = _counts(results)
    said = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
    cost = sum(r.cost_usd for r in results)
    print(f"{len(results)} run(s): {said}; ${cost:.4f}; {elapsed:.1f}s")
