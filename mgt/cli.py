"""The command line: argv → a parsed command → one library call → an exit code.

Parsing lives here; each command's work lives in its package (`*.cli` modules),
imported only when that command runs so `mgt --help` stays fast. Every
`MgtError` is printed here, once: as one line, or for a `CheckError` (a machine
that does not check, met by exec, resume or graph) as `mgt check` prints it;
never as a traceback. Ctrl-C exits 130. A bad flag prints the usage of the
subcommand it was given to, and exits 2.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from mgt import __version__

if TYPE_CHECKING:
    from mgt.errors import CheckError

__all__ = ["build_parser", "main", "render_check_error"]

HANDLERS: dict[str, str] = {
    "check": "mgt.check.cli:main",
    "graph": "mgt.compile.cli:graph_main",
    "exec": "mgt.runtime.cli:exec_main",
    "runs": "mgt.runtime.cli:runs_main",
    "show": "mgt.runtime.cli:show_main",
    "resume": "mgt.runtime.cli:resume_main",
    "logs": "mgt.logs.cli:main",
    "analyze": "mgt.analyze.cli:main",
    "ui": "mgt.ui.cli:ui_main",
    "prs": "mgt.evolve.prs_cli:main",
    "serve": "mgt.serve.cli:serve_main",
    "worker": "mgt.engines.temporal.worker:worker_main",
    "cancel": "mgt.engines.temporal.client:cancel_main",
}


class _Parser(argparse.ArgumentParser):
    """argparse that exits 2 with a one-line message (argparse's own default is 2 as well)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(2, f"mgt: error: {message}\n")


def _directory(text: str) -> str:
    if not text.strip():  # "" would be the current directory
        raise argparse.ArgumentTypeError("expected a directory, got an empty string")
    return text


def _runs_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--runs-dir",
        type=_directory,
        default=os.environ.get("MGT_RUNS_DIR") or ".mgt/runs",  # an empty variable is unset
        help="directory holding run directories (default: .mgt/runs, or $MGT_RUNS_DIR)",
    )


def _positive(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return int(text)


def _max_model_calls(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--max-model-calls", type=_positive, metavar="N",
        help="model calls at once across every run in --runs-dir (default: "
             "$MGT_MAX_MODEL_CALLS, mgt.toml [exec] max_model_calls, or 4)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mgt",
        description="Micro-Gas Town runtime: check, draw and run .mgt pipelines.",
    )
    parser.add_argument("--version", action="version", version=f"mgt {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    parser.set_defaults(_commands=sub.choices)

    p = sub.add_parser("check", help="check .mgt files (exit 1 on errors)")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--json", action="store_true", help="print diagnostics as JSON")

    p = sub.add_parser("graph", help="draw a machine")
    p.add_argument("file", metavar="FILE")
    p.add_argument(
        "--format", default="text", choices=["text", "mermaid", "dot", "svg", "png"],
        help="output format (default: text)",
    )
    p.add_argument("-o", "--output", metavar="OUT", help="write to OUT instead of stdout")
    p.add_argument("--run", metavar="RUN_ID", help="highlight the path a run took")
    _runs_dir(p)

    p = sub.add_parser("exec", help="run a machine to a final state")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--input", action="append", default=[], metavar="K=V", help="set an input")
    p.add_argument("--inputs", metavar="FILE", help="inputs from a .json or .toml file")
    p.add_argument(
        "--executor", metavar="NAME",
        help="zellij-cc | claude | tmux | replay[:DIR] (default: zellij-cc in zellij, else claude)",
    )
    p.add_argument("--replay-dir", metavar="DIR", help="recorded results for --executor replay")
    _runs_dir(p)
    p.add_argument("--budget-usd", type=float, metavar="X", help="stop before a call over budget")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    p.add_argument("--dry-run", action="store_true", help="print prompts/commands, call nothing")
    p.add_argument("--session", metavar="S", help="zellij session for the zellij-cc executor")
    _max_model_calls(p)
    p.add_argument("--each", metavar="INPUTS.jsonl",
                   help="one run per line (a JSON object of inputs), run concurrently")
    p.add_argument("--parallel", type=_positive, default=8, metavar="N",
                   help="with --each: runs at once (default 8)")
    p.add_argument("--engine", choices=["file", "temporal"], default="file",
                   help="file: run here, journaled (default); temporal: run on mgt workers")
    p.add_argument("--temporal-address", metavar="HOST:PORT",
                   help="Temporal server (default: $MGT_TEMPORAL_ADDRESS, mgt.toml [temporal])")

    p = sub.add_parser("worker", help="run attempts of Temporal runs")
    p.add_argument("--temporal-address", metavar="HOST:PORT",
                   help="Temporal server (default: $MGT_TEMPORAL_ADDRESS, mgt.toml [temporal])")
    p.add_argument("--task-queue", metavar="Q", help="shared task queue (mgt.toml [temporal])")
    p.add_argument("--max-concurrent", type=int, default=4, metavar="N",
                   help="attempts run at once at most (default: 4)")
    p.add_argument("--work-dir", type=_directory, default=".mgt/worker", metavar="DIR",
                   help="where runs' files are kept (default: .mgt/worker)")

    p = sub.add_parser("cancel", help="cancel a run on Temporal")
    p.add_argument("run_id", metavar="RUN_ID")
    _runs_dir(p)

    p = sub.add_parser("runs", help="list runs, newest first")
    _runs_dir(p)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("show", help="a run's path, outputs, costs and errors")
    p.add_argument("run_id", metavar="RUN_ID")
    _runs_dir(p)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("resume", help="continue an interrupted run")
    p.add_argument("run_id", metavar="RUN_ID")
    _runs_dir(p)
    p.add_argument("--executor", metavar="NAME")
    p.add_argument("--replay-dir", metavar="DIR")
    p.add_argument("--budget-usd", type=float, metavar="X")
    p.add_argument("--json", action="store_true")
    p.add_argument("--session", metavar="S")
    _max_model_calls(p)

    p = sub.add_parser("logs", help="query production events (Loki or a file)")
    p.add_argument("kind", choices=["transitions", "llm-calls", "errors", "session"])
    p.add_argument("session_id", nargs="?", metavar="ID", help="session id (for `session`)")
    p.add_argument(
        "--since", default=None, metavar="D",
        help="time range, e.g. 30m, 24h, 7d, all (default: 24h; 7d for session)",
    )
    p.add_argument("--limit", type=int, default=100, metavar="N", help="max results (100)")
    p.add_argument("--min-latency", type=int, metavar="MS", help="llm-calls at least this slow")
    p.add_argument("--json", action="store_true", help='print [{"timestamp", "event"}]')
    p.add_argument("--source", metavar="URL|FILE", help="Loki URL or event file")
    p.add_argument("--verbose", action="store_true")

    p = sub.add_parser("analyze", help="find patterns in events (deterministic)")
    p.add_argument("--source", metavar="URL|FILE")
    p.add_argument("--since", default="24h", metavar="D")
    p.add_argument("--polecat", metavar="TOML", help="thresholds from this polecat file")
    p.add_argument("--nodes", metavar="FILE", help="known graph nodes, for dead paths")
    p.add_argument("--json", action="store_true", help="print the PatternReport JSON")

    p = sub.add_parser("ui", help="browse runs, patterns and PRs in a web browser (read-only)")
    _runs_dir(p)
    p.add_argument("--repo", metavar="PATH", help="repository whose local PR records to show")
    p.add_argument("--report", metavar="FILE", help="a PatternReport from `mgt analyze --json`")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="port (8765; 0 picks a free one)")
    p.add_argument("--token", metavar="T", help="access token, required off loopback "
                   "(or $MGT_UI_TOKEN)")
    p = sub.add_parser("prs", help="the target's sleeptime PRs: state, patterns, impact verdict")
    p.add_argument("--repo", default=".", metavar="R", help="the target git repository (.)")
    p.add_argument("--forge", default="local", choices=["local", "github"])
    p.add_argument("--github-repo", metavar="OWNER/NAME", help="default: from the remote's URL")
    p.add_argument("--json", action="store_true", help="print the ledger as JSON")
    p = sub.add_parser("serve", help="run the [[schedule]] tables of mgt.toml")
    p.add_argument("--config", metavar="FILE", help="mgt.toml to read (default: found upwards)")
    p.add_argument("--once", action="store_true", help="run what is due, then exit")
    p.add_argument("--json", action="store_true", help="progress as JSON lines")
    p.add_argument("--now", help=argparse.SUPPRESS)  # a fixed start time, for tests
    p.add_argument("--ui", type=int, metavar="PORT", help="also serve the web view of the "
                   "runs (as mgt ui) on PORT (0: a free one)")
    p.add_argument("--ui-host", default="127.0.0.1", metavar="H",
                   help="the web view's address (127.0.0.1; another needs $MGT_UI_TOKEN)")
    p.add_argument("--engine", choices=["file", "temporal"], default="file",
                   help="file: run the schedules here (default); temporal: make them "
                        "Temporal Schedules, fired by the server, and follow their runs")
    p.add_argument("--temporal-address", metavar="HOST:PORT",
                   help="Temporal server (default: $MGT_TEMPORAL_ADDRESS, mgt.toml [temporal])")
    _runs_dir(p)
    return parser


def _tolerant_streams() -> None:
    """Text no UTF-8 can hold (a lone surrogate read from a log or a model's JSON, an
    undecodable argument) is printed as its backslash escape, never a UnicodeEncodeError;
    inside JSON output that escape is the same JSON string."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(ValueError, OSError):  # a closed or detached stream
                reconfigure(errors="backslashreplace")


def render_check_error(err: CheckError) -> str:
    """A machine that does not check, as `mgt check` prints it: each diagnostic with its
    source line, then `FILE: N errors, M warnings`."""
    from pathlib import Path

    from mgt.diagnostics import render, sort_key

    if not err.diagnostics:
        return f"mgt: {err}"
    sources = dict(err.sources)
    blocks = []
    for d in sorted(err.diagnostics, key=sort_key):
        if d.span is not None and d.span.file not in sources:
            with contextlib.suppress(OSError, UnicodeDecodeError):
                sources[d.span.file] = Path(d.span.file).read_text("utf-8")
        blocks.append(render(d, sources.get(d.span.file) if d.span is not None else None))
    errors = sum(d.is_error for d in err.diagnostics)
    warnings = len(err.diagnostics) - errors
    warned = f", {warnings} warning{'s' * (warnings != 1)}" if warnings else ""
    where = f"{err.path}: " if err.path else ""
    blocks.append(f"{where}{errors} error{'s' * (errors != 1)}{warned}")
    return "\n".join(blocks)


def main(argv: Sequence[str] | None = None) -> int:
    _tolerant_streams()
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # told to the subcommand's parser, so its own usage is shown
        commands = getattr(args, "_commands", {})
        where = commands.get(args.command, parser) if args.command else parser
        where.error(f"unrecognized arguments: {' '.join(extra)}")
    if not args.command:
        parser.print_help(sys.stderr)
        return 2
    from mgt.errors import CheckError, MgtError

    module_name, _, func_name = HANDLERS[args.command].partition(":")
    try:
        handler = getattr(importlib.import_module(module_name), func_name)
        code: int = handler(args)
        return code
    except CheckError as err:
        print(render_check_error(err), file=sys.stderr)
        return err.exit_code
    except MgtError as err:
        print(f"mgt: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("mgt: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Output piped into something that closed early (`| head`): not an error.
        sys.stderr.close()
        return 0
