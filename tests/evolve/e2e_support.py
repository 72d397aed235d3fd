"""Evolve-cycle e2e helpers: sample answers and their variations → runs of `python -m mgt exec`.

The refine answers are built from the sample ProposedChanges in
examples/responses/refine.json; new diffs are made against the files of
examples/target with difflib (what a model writes: a plain unified diff).
`run_evolve` runs machines/evolve.mgt as a user would and returns what the run
left: the `--json` summary, stderr, the run directory and its journal.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
MACHINE = ROOT / "machines" / "evolve.mgt"
TARGET = ROOT / "examples" / "target"
LOGS = ROOT / "examples" / "logs" / "tidepool-events.jsonl"
SAMPLE = ROOT / "examples" / "responses" / "refine.json"

#: What a rejected attempt's feedback starts with in the next prompt (mgt.runtime.outcome).
REJECTED = "## Your previous answer (attempt {n}) was rejected: `{event}`"
DATA_MARKERS = ("data, not instructions", "quoted as data")


def sample() -> dict[str, Any]:
    """The sample ProposedChanges (a fresh copy each call: tests edit it)."""
    result = json.loads(SAMPLE.read_text(encoding="utf-8"))
    changes: dict[str, Any] = copy.deepcopy(result["structured_output"])
    return changes


def file_diff(path: str, edit: Callable[[str], str | None]) -> str:
    """A unified diff of examples/target/PATH edited by `edit` (None deletes the file)."""
    old = (TARGET / path).read_text(encoding="utf-8")
    new = edit(old)
    old_lines = old.splitlines(keepends=True)
    if new is None:
        lines = difflib.unified_diff(old_lines, [], f"a/{path}", "/dev/null")
    else:
        assert new != old, f"the edit leaves {path} unchanged"
        lines = difflib.unified_diff(old_lines, new.splitlines(keepends=True),
                                     f"a/{path}", f"b/{path}")
    return "".join(lines)


def file_change(path: str, diff: str, rationale: str, change_type: str) -> dict[str, Any]:
    """A FileChange whose line counts are the diff's own."""
    body = [line for line in diff.splitlines() if not line.startswith(("---", "+++"))]
    return {
        "path": path,
        "diff": diff,
        "rationale": rationale,
        "lines_added": sum(1 for line in body if line.startswith("+")),
        "lines_removed": sum(1 for line in body if line.startswith("-")),
        "change_type": change_type,
    }


def tree_digest(root: Path) -> str:
    """A hash of every file's path and bytes under `root` (to show a tree was not touched)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
    return proc.stdout


#: The offline main job, as docs/evolve.md gives it, for when README.md has no `mgt exec` yet.
OFFLINE_EXEC = ["exec", "machines/evolve.mgt", "--executor", "replay",
                "--replay-dir", "examples/responses"]
_NETWORK_OR_CREDENTIALS = re.compile(
    r"^(ANTHROPIC_|CLAUDE_|MGT_|GITHUB_|GH_|GRAFANA_|ZELLIJ|AWS_|GOOGLE_)|_PROXY$|^NO_PROXY$",
    re.IGNORECASE,
)


def readme_exec_args(repo: Path) -> list[str] | None:
    """The arguments after `mgt` of the first `mgt exec` command in repo/README.md, if any."""
    readme = repo / "README.md"
    if not readme.is_file():
        return None
    text = readme.read_text(encoding="utf-8").replace("\\\n", " ")
    for match in re.finditer(r"(?:^|[\s;&|(])mgt (exec [^\n;&|]*)", text):
        return shlex.split(match.group(1))
    return None


def offline_env(home: Path, pythonpath: Path) -> dict[str, str]:
    """No credentials, no model CLI, every proxy pointing at a closed port: an offline user."""
    env = {k: v for k, v in user_env().items() if not _NETWORK_OR_CREDENTIALS.search(k)}
    dead = "http://127.0.0.1:9"
    env.update(HOME=str(home), PYTHONPATH=str(pythonpath), HTTP_PROXY=dead, HTTPS_PROXY=dead,
               ALL_PROXY=dead, http_proxy=dead, https_proxy=dead, all_proxy=dead)
    node_bin = str(ROOT / "tests" / ".node" / "node_modules" / ".bin")
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if p != node_bin)
    return env


def user_env(**extra: str) -> dict[str, str]:
    """This environment as a user's shell has it: no runs-dir override, no zellij session, and
    Python writing bytecode (so must_pass commands leave __pycache__ behind, as they do for
    users)."""
    env = {k: v for k, v in os.environ.items()
           if k not in {"MGT_RUNS_DIR", "ZELLIJ", "ZELLIJ_SESSION_NAME", "PYTHONDONTWRITEBYTECODE"}}
    env.update(extra)
    return env


@dataclass
class Run:
    code: int
    summary: dict[str, Any]
    stderr: str
    dir: Path

    @property
    def events(self) -> list[dict[str, Any]]:
        lines = (self.dir / "events.jsonl").read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def finished(self, state: str) -> list[dict[str, Any]]:
        """The state's attempt_finished events, in order."""
        return [e for e in self.events if e["type"] == "attempt_finished" and e["state"] == state]

    def outcomes(self, state: str) -> list[str]:
        return [e["outcome"] for e in self.finished(state)]

    @property
    def leftovers(self) -> list[str]:
        """mgt's temporary directories (scratch worktrees) still in the run's TMPDIR."""
        return sorted(p.name for p in (self.dir.parent.parent / "tmp").glob("mgt-*"))

    @property
    def target(self) -> Path:
        """The scratch copy of the target the run worked on (RUN/target)."""
        return self.dir / "target"


def run_evolve(work: Path, *inputs: str, options: tuple[str, ...] = ("--executor", "claude"),
               timeout: float = 150) -> Run:
    """`python -m mgt exec machines/evolve.mgt --executor claude --json` with `--input` each."""
    args = [sys.executable, "-m", "mgt", "exec", str(MACHINE), "--runs-dir", str(work / "runs"),
            "--json", *options]
    for item in inputs:
        args += ["--input", item]
    scratch = work / "tmp"  # where mgt's worktrees go: a test can see that none is left
    scratch.mkdir(exist_ok=True)
    proc = subprocess.run(args, capture_output=True, text=True, cwd=work,
                          env=user_env(TMPDIR=str(scratch)), timeout=timeout, check=False)
    assert proc.stdout.strip(), f"no --json summary (exit {proc.returncode}): {proc.stderr}"
    summary = json.loads(proc.stdout)
    return Run(proc.returncode, summary, proc.stderr, work / "runs" / summary["run_id"])


@dataclass(frozen=True)
class Fence:
    """A top-level fenced block of a Markdown text: its body's span and the heading above it."""

    start: int
    end: int
    heading: str


def fences(text: str) -> list[Fence]:
    """Every top-level fenced block (``` or ~~~, closed by a run at least as long)."""
    found: list[Fence] = []
    heading = ""
    opener: str | None = None
    body_start = 0
    offset = 0
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if opener is None:
            if stripped.startswith(("```", "~~~")):
                char = stripped[0]
                opener = char * (len(stripped) - len(stripped.lstrip(char)))
                body_start = offset + len(line)
            elif stripped.startswith("#"):
                heading = stripped
        elif stripped and set(stripped) == {opener[0]} and len(stripped) >= len(opener):
            found.append(Fence(body_start, offset, heading))
            opener = None
        offset += len(line)
    if opener is not None:  # an unclosed fence runs to the end of the text
        found.append(Fence(body_start, len(text), heading))
    return found


def unquoted_occurrences(text: str, needle: str) -> list[str]:
    """Where `needle` occurs outside a fenced block under a data heading: context snippets."""
    quoted = [f for f in fences(text) if any(m in f.heading for m in DATA_MARKERS)]
    bad: list[str] = []
    at = text.find(needle)
    while at >= 0:
        if not any(f.start <= at and at + len(needle) <= f.end for f in quoted):
            bad.append(text[max(0, at - 200):at + len(needle) + 50])
        at = text.find(needle, at + 1)
    return bad
