"""Real runs, a PatternReport and PR records for the web view's tests, hostile ones included.

Runs are made by `mgt exec` itself; what a run directory could hold but a
command state does not write (a model's answer, an odd file name, a run id
with markup) is then written into a copy, as anything on disk may be.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.runtime.procs import mgt

REPO_ROOT = Path(__file__).resolve().parents[2]

#: Markup that would run if a page put it into HTML unescaped: each sets window.__xss.
XSS_SCRIPT = "<script>window.__xss='script';alert('script')</script>"
XSS_IMG = "\"><img src=x id=xss-img onerror=\"window.__xss='img';alert('img')\">"
XSS_SVG = "<svg id=xss-svg onload=\"window.__xss='svg';alert('svg')\"></svg>"
XSS_ALL = f"{XSS_SCRIPT} {XSS_IMG} {XSS_SVG}"

SECRET = "s3cr3t-value-never-shown"

GREET = """\
machine greet "says hello in two steps"

input who: str = "world"
input api_token: str = ""
input endpoint: str = "https://example.com/"

state hello:
    run command "echo hello $who"
    with who = input.who
    on done -> bye

state bye:
    run command "echo bye"
    on done -> ok

final ok: succeed "all said"
"""

BROKEN = """\
machine broken "a command that fails"

state build:
    run command "echo compiling >&2; exit 4"
    on done -> ok

final ok: succeed
"""

HOSTILE = """\
machine hostile "prints markup"

input note: str = ""

state shout:
    run command "printf '%s' \\"$note\\"; printf '%s' \\"$note\\" >&2"
    with note = input.note
    on done -> ok

final ok: succeed
"""

SLOW = """\
machine slow "waits for a go file before each step"

state one:
    run command "while [ ! -f go1 ]; do sleep 0.05; done; echo one"
    on done -> two

state two:
    run command "while [ ! -f go2 ]; do sleep 0.05; done; echo two"
    on done -> three

state three:
    run command "echo three"
    on done -> ok

final ok: succeed "all three done"
"""

def scan_machine() -> str:
    """A machine whose one state's output is a PatternReport (the analyzer on the sample)."""
    return f"""\
machine scan "find patterns in the sample logs"

import schemas from "{REPO_ROOT / 'schemas'}"

input source: path = "{REPO_ROOT / 'examples/logs/tidepool-events.jsonl'}"

state analyze:
    run builtin analyze-logs
    with source = input.source, since = "all"
    output PatternReport
    on done -> ok

final ok: succeed
"""


#: The run id a hostile run directory is copied to (a directory name can hold markup).
HOSTILE_RUN_ID = "20990101-000000-x\"><img src=x onerror=alert(9)>"


@dataclass(frozen=True)
class Runs:
    root: Path  # the working directory the runs were made in
    runs_dir: Path
    ok: str
    failed: str
    hostile: str
    hostile_copy: str
    scan: str


def exec_run(work: Path, machine: Path, *args: str) -> str:
    proc = mgt("exec", machine, "--runs-dir", "runs", "--json", *args, cwd=work)
    summary: dict[str, Any] = json.loads(proc.stdout)
    return str(summary["run_id"])


def make_runs(work: Path) -> Runs:
    """A succeeded run with secret inputs, a failed one, two hostile ones, and one whose
    output is a PatternReport."""
    (work / "runs").mkdir(parents=True)
    machines = {"greet.mgt": GREET, "broken.mgt": BROKEN, "hostile.mgt": HOSTILE,
                "scan.mgt": scan_machine()}
    for name, text in machines.items():
        (work / name).write_text(text)
    ok = exec_run(work, work / "greet.mgt", "--input", "who=Ada",
                  "--input", f"api_token={SECRET}",
                  "--input", f"endpoint=https://bot:{SECRET}@example.com/hook")
    failed = exec_run(work, work / "broken.mgt")
    hostile = exec_run(work, work / "hostile.mgt", "--input", f"note={XSS_ALL}")
    scan = exec_run(work, work / "scan.mgt")
    runs_dir = work / "runs"
    attempt = runs_dir / hostile / "states" / "shout" / "1"
    # what a model could answer and a prompt could quote
    (attempt / "result.json").write_text(json.dumps({"type": "result", "result": XSS_ALL}))
    (attempt / "prompt.md").write_text(f"# Prompt\n\nSummarise: {XSS_ALL}\n")
    (attempt / "<img src=x onerror=alert(7)>.txt").write_text(XSS_ALL)
    shutil.copytree(runs_dir / hostile, runs_dir / HOSTILE_RUN_ID)
    return Runs(work, runs_dir, ok, failed, hostile, HOSTILE_RUN_ID, scan)


def make_report(path: Path) -> Path:
    """The analyzer's report on the bundled sample logs, plus a pattern made of markup."""
    proc = mgt("analyze", "--source", REPO_ROOT / "examples/logs/tidepool-events.jsonl",
               "--since", "all", "--nodes", REPO_ROOT / "examples/logs/nodes.txt", "--json",
               cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    report["patterns"].append({
        "id": "repeated-error-xss", "type": "repeated_error", "severity": "warning",
        "occurrences": 3, "recommendation": XSS_ALL,
        "details": {"template": XSS_ALL, XSS_IMG: 1, "count": 3,
                    "first_seen": "2026-01-15T01:00:00Z", "last_seen": "2026-01-15T05:00:00Z",
                    "contexts": {XSS_SCRIPT: 3}},
        "sample_events": [{"timestamp": "2026-01-15T01:00:00Z",
                           "event": {"type": "error", "message": XSS_ALL}}],
    })
    path.write_text(json.dumps(report))
    return path


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t",
                           *args], check=True, capture_output=True, text=True)
    return done.stdout.strip()


def _branch_commit(repo: Path, branch: str, name: str) -> str:
    """A commit on a new branch (from main), the way open-pr leaves a sleeptime PR."""
    _git(repo, "checkout", "-q", "-b", branch, "main")
    (repo / name).write_text(f"{branch}\n")
    _git(repo, "add", name)
    _git(repo, "commit", "-q", "-m", f"change on {branch}")
    sha = _git(repo, "rev-parse", "HEAD")
    _git(repo, "checkout", "-q", "main")
    return sha


def make_repo(path: Path) -> Path:
    """A git repository with local PR records as the ledger reads them: an open PR, a merged
    one with an impact verdict, and a hostile one (markup everywhere, a branch that is gone)."""
    path.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    (path / "README").write_text("target\n")
    _git(path, "add", "README")
    _git(path, "commit", "-q", "-m", "initial")
    open_sha = _branch_commit(path, "sleeptime/2026-01-16-slow-llm", "a.txt")
    merged_sha = _branch_commit(path, "sleeptime/2026-01-17-dmscene", "b.txt")
    _git(path, "merge", "-q", "--no-ff", "-m", "merge the dmScene change",
         "sleeptime/2026-01-17-dmscene")
    prs = path / ".git" / "mgt" / "prs"
    prs.mkdir(parents=True)
    base: dict[str, Any] = {
        "head": "sleeptime/2026-01-16-slow-llm", "base": "main", "draft": True,
        "labels": ["sleeptime"], "reviewers": [], "commit_sha": open_sha,
        "files_changed": ["templates/dm_scene.jinja"], "created_at": "2026-01-16T03:00:00Z",
    }
    verdict = {
        "schema": 1, "kind": "verdict", "pr": 2, "verdict": "improved",
        "merged_at": "2026-01-17T12:00:00Z", "window_seconds": 86400,
        "patterns": [
            {"id": "slow-llm-dmscene", "type": "slow_llm", "key": {"node": "dmScene"},
             "metric": "slow_share", "before": {"slow_share": 0.93},
             "after": {"slow_share": 0.12}, "change": -0.871, "verdict": "improved"},
            {"id": "token-bloat-dmscene", "type": "token_bloat", "key": {"node": "dmScene"},
             "metric": "bloat_share", "before": {"bloat_share": 0.8},
             "after": {"bloat_share": 0.05}, "change": -0.9375, "verdict": "improved"},
        ],
    }
    hostile_verdict = {
        "kind": "verdict", "pr": 3, "verdict": "regressed",
        "patterns": [{"id": XSS_SCRIPT, "type": "slow_llm", "key": {"node": XSS_IMG},
                      "metric": XSS_IMG, "before": {XSS_IMG: 1.0}, "after": {XSS_IMG: 2.0},
                      "change": 1.0, "reason": XSS_ALL}],
    }
    records = {
        1: {**base, "title": "sleeptime: trim the dmScene prompt",
            "patterns_addressed": ["token-bloat-dmscene"], "body": "## Summary\n\nplain"},
        2: {**base, "title": "sleeptime: speed up slow LLM calls at dmScene",
            "head": "sleeptime/2026-01-17-dmscene", "commit_sha": merged_sha,
            "patterns_addressed": ["slow-llm-dmscene", "token-bloat-dmscene"],
            "body": "## Summary\n\nmeasured", "mgt_verdict": verdict},
        3: {**base, "title": f"sleeptime: {XSS_ALL}", "head": XSS_IMG,
            "patterns_addressed": [XSS_SCRIPT], "body": XSS_ALL, "mgt_verdict": hostile_verdict,
            "labels": [XSS_SVG]},
    }
    for number, record in records.items():
        (prs / f"{number}.json").write_text(json.dumps({"number": number, **record}))
        (prs / f"{number}.md").write_text(str(record["body"]))
    return path
