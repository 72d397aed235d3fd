"""One `run formula analyze` state via each model executor → request size, input tokens per call.

    python bench/bench_tokens.py [--claude PATH] [--keep DIR]

The same one-state machine (the bundled log-analyzer polecat running the
`analyze` formula, PatternReport output) runs with `python -m mgt exec` through:

    claude          headless Claude Code, lean: the polecat's own system prompt
                    (--system-prompt-file), only its mapped tools (--tools Bash),
                    the schema as --json-schema
    claude --bare   the same plus Claude Code's --bare (MGT_CLAUDE_ARGS=--bare)
    zellij-cc       the seed's zellij-cc (here the stand-in in tests/fakes) running
                    `claude --dangerously-skip-permissions --output-format json`:
                    Claude Code's default system prompt and tools, the polecat's
                    system prompt at the head of the user prompt

Every model call goes to the scripted Messages-API server of tests/fakes, which
answers with a valid PatternReport and logs each request body. Figures per
call: request body characters, system prompt characters, tools sent, and input
tokens. The server has no tokenizer: it reports characters / 4 as
`input_tokens`, and Claude Code bills what the server reports, so the token
figures are that estimate (the ratios are what matter). The real CLI comes from
tests/.node (scripts/install-test-tools.sh), `--claude PATH` or `MGT_CLAUDE`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fakes.claude_cli import (  # noqa: E402
    CLAUDE_BIN,
    ZELLIJ_CC_STANDIN,
    claude_env,
    claude_version,
)
from tests.fakes.messages_api import MessagesServer  # noqa: E402

REPORT = {
    "patterns": [
        {
            "id": "slow-llm-dmscene",
            "type": "slow_llm",
            "severity": "warning",
            "occurrences": 12,
            "details": {"node": "dmScene", "avg_latency_ms": 4200},
            "recommendation": "Trim the dmScene prompt.",
        }
    ],
    "summary": {"total_patterns": 1, "critical": 0, "warning": 1, "info": 0},
}

MACHINE = """\
machine bench_tokens "one analyze state, to measure what each executor sends"
import polecats from "{root}/polecats"
import formulas from "{root}/formulas"
import schemas from "{root}/schemas"
state analyze:
    run formula analyze
    with since = 24h
    on done -> ok
final ok: succeed
"""


@dataclass
class Measure:
    label: str
    calls: int
    body_chars: int  # of the first call
    system_chars: int
    messages_chars: int
    tools_chars: int
    tools: list[str]
    server_tokens: int  # what the server reported for the first call (chars / 4)
    cli_input_tokens: int  # what mgt recorded from Claude Code's result (all calls)
    cost_usd: float


def run_case(
    label: str, executor: list[str], answer: dict[str, Any], env: dict[str, str], work: Path
) -> Measure:
    machine = work / "bench.mgt"
    machine.write_text(MACHINE.format(root=ROOT))
    runs = work / f"runs-{label.replace(' ', '_')}"
    with MessagesServer([answer]) as server:
        proc = subprocess.run(
            [sys.executable, "-m", "mgt", "exec", str(machine), *executor,
             "--runs-dir", str(runs), "--json"],
            cwd=work, env={**env, **claude_env(server.url, work / "home")},
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        calls = server.message_requests
    if proc.returncode != 0 or not calls:
        raise SystemExit(
            f"{label}: mgt exec failed (exit {proc.returncode}): "
            f"{proc.stderr.strip()[-800:] or proc.stdout.strip()[-800:]}"
        )
    summary = json.loads(proc.stdout)
    first = calls[0]
    return Measure(
        label=label,
        calls=len(calls),
        body_chars=first.body_chars,
        system_chars=len(first.system_text),
        messages_chars=len(json.dumps((first.body or {}).get("messages", []))),
        tools_chars=len(json.dumps((first.body or {}).get("tools", []))),
        tools=[t for t in first.tool_names if t != "DeferredToolPlaceholder"],
        server_tokens=first.body_chars // 4,
        cli_input_tokens=int(summary.get("tokens", {}).get("input", 0)),
        cost_usd=float(summary.get("cost_usd") or 0.0),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--claude", type=Path, help="the Claude Code program")
    parser.add_argument("--keep", type=Path, help="keep the runs in this directory")
    args = parser.parse_args(argv)
    claude = args.claude or Path(os.environ.get("MGT_CLAUDE") or CLAUDE_BIN)
    version = claude_version(claude) if claude.is_file() else None
    if version is None:
        print(f"no working Claude Code at {claude}: run scripts/install-test-tools.sh",
              file=sys.stderr)  # fmt: skip
        return 2
    work = args.keep or Path(tempfile.mkdtemp(prefix="mgt-bench-tokens-"))
    work.mkdir(parents=True, exist_ok=True)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MGT_", "ZELLIJ"))}
    base.update(MGT_CLAUDE=str(claude), MGT_ZELLIJ_CC=str(ZELLIJ_CC_STANDIN))
    try:
        results = [
            run_case("claude", ["--executor", "claude"], {"structured": REPORT}, base, work),
            run_case(
                "claude --bare", ["--executor", "claude"], {"structured": REPORT},
                {**base, "MGT_CLAUDE_ARGS": "--bare"}, work,
            ),
            run_case(
                "zellij-cc", ["--executor", "zellij-cc", "--session", "bench"],
                {"text": json.dumps(REPORT)}, base, work,
            ),
        ]  # fmt: skip
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)

    print(f"Claude Code {version}; one `run formula analyze` state (log-analyzer polecat)")
    print("tokens: the scripted server's estimate, request characters / 4\n")
    head = f"{'executor':<15}{'calls':>6}{'body chars':>12}{'system':>9}{'messages':>10}"
    head += f"{'tools':>9}{'tokens/call':>13}{'mgt input tok':>15}{'cost usd':>10}  tools sent"
    print(head)
    for m in results:
        print(
            f"{m.label:<15}{m.calls:>6}{m.body_chars:>12,}{m.system_chars:>9,}"
            f"{m.messages_chars:>10,}{m.tools_chars:>9,}{m.server_tokens:>13,}"
            f"{m.cli_input_tokens:>15,}{m.cost_usd:>10.5f}  {len(m.tools)}: {','.join(m.tools)}"
        )
    lean, bare, default = results
    print(
        f"\nzellij-cc / claude: {default.body_chars / lean.body_chars:.1f}x the request body, "
        f"{default.cli_input_tokens / max(lean.cli_input_tokens, 1):.1f}x the input tokens per run"
    )
    print(f"claude --bare / claude: {bare.body_chars / lean.body_chars:.2f}x the request body")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
