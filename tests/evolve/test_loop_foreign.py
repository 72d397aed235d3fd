"""The loop over time on a user's system that is not the bundled sample, driven by `mgt serve`.

The target is a fresh repository of its own: a graph DSL in
`conf/flows/story/` (nodes plannerStep, toolRouter, summarizeTurn, onFailure),
prompts in `.tmpl` files, a default branch `trunk` (its mgt.toml says so), a
path with spaces, a shell check as `must_pass`. Its logs come from the
generator below (other node names, another mix of patterns, a change point at
the merge time, shuffled lines), and the refiner's answers (one per pattern,
replayed) edit that repository's files. A separate ops directory holds the
mgt.toml with the `[[schedule]]` table, as a user would keep it, and
`mgt serve --once` runs each "night" with `MGT_SERVE_NOW` moving its clock.
"""

from __future__ import annotations

import difflib
import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from mgt.analyze.analyzer import analyze_source
from mgt.evolve.metadata import parse_blocks
from tests.evolve.conftest import ROOT
from tests.fakes.github_api import GitHubStandIn

PARALLEL = ROOT / "machines" / "evolve-parallel.mgt"

#: The merge time of the changes: long enough ago that a 24h after-window has ended.
T = (datetime.now(UTC) - timedelta(days=2)).replace(minute=0, second=0, microsecond=0)

GRAPH = """\
# story flow: one line per node
flow story entry=plannerStep
  step plannerStep   kind=llm  prompt=prompts/planner_step.tmpl  model=big    budget=40s
  step toolRouter    kind=tool retry=0                           on_error=onFailure
  step summarizeTurn kind=llm  prompt=prompts/summarize_turn.tmpl model=small budget=10s
  step onFailure     kind=sink
  edge plannerStep -> toolRouter
  edge toolRouter -> summarizeTurn
  edge toolRouter -> onFailure
"""

PLANNER = """\
You plan the next move of the story.

Context so far:
{{ transcript }}

Everything the world remembers, verbatim:
{{ world_archive }}

Answer with one plan.
"""

SUMMARY = """\
Summarize the turn in two sentences.
{{ turn }}
"""

CHECK = """\
#!/bin/sh
# the repository's own check: the flow parses and every prompt it names exists
set -e
f=conf/flows/story/graph.flow
grep -q '^flow story' "$f"
for p in $(sed -n 's/.*prompt=\\([^ ]*\\).*/\\1/p' "$f"); do test -f "conf/flows/story/$p"; done
"""

TARGET_TOML = """\
[evolve]
base_branch = "trunk"
must_pass = ["sh ci/check.sh"]
timeout = "60s"
forbidden_paths = ["vendor/"]
"""

FILES = {
    "conf/flows/story/graph.flow": GRAPH,
    "conf/flows/story/prompts/planner_step.tmpl": PLANNER,
    "conf/flows/story/prompts/summarize_turn.tmpl": SUMMARY,
    "ci/check.sh": CHECK,
    "mgt.toml": TARGET_TOML,
    "README.md": "# story engine\n",
}


# ------------------------------------------------------------------ the user's repository


def git(repo: Path, *args: str, when: datetime | None = None, check: bool = True) -> str:
    env = dict(os.environ)
    if when is not None:
        stamp = when.strftime("%Y-%m-%dT%H:%M:%S+0000")
        env.update(GIT_AUTHOR_DATE=stamp, GIT_COMMITTER_DATE=stamp)
    proc = subprocess.run(["git", "-C", str(repo), "-c", "user.name=Dana Reviewer",
                           "-c", "user.email=dana@example.org", *args],
                          capture_output=True, text=True, env=env, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)}: {proc.stderr}")
    return proc.stdout.strip()


def make_repo(parent: Path) -> Path:
    """The user's repository: default branch trunk, a path with spaces, its own layout."""
    repo = parent / "Acme Story Engine" / "story graph"
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "trunk")
    for rel, text in FILES.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text, encoding="utf-8")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "story engine", when=T - timedelta(days=10))
    return repo


def diff(path: str, old: str, new: str) -> str:
    return "".join(difflib.unified_diff(old.splitlines(keepends=True),
                                        new.splitlines(keepends=True), f"a/{path}", f"b/{path}"))


def answer(pattern: str, path: str, old: str, new: str, why: str,
           percent: str = "30-50%") -> dict[str, Any]:
    """A ProposedChanges citing `pattern` that turns `old` into `new` in `path`."""
    text = diff(path, old, new)
    added = sum(1 for line in text.splitlines() if line.startswith("+")
                and not line.startswith("+++"))
    removed = sum(1 for line in text.splitlines() if line.startswith("-")
                  and not line.startswith("---"))
    return {
        "changes": [{"path": path, "diff": text, "rationale": f"Addresses {pattern}. {why}",
                     "lines_added": added, "lines_removed": removed, "change_type": "graph"}],
        "patterns_addressed": [pattern],
        "validation": {"build_success": True, "test_success": True},
        "expected_impact": {"metrics": [{"metric": pattern, "before": 1, "after_estimate": "less",
                                         "improvement_percent": percent}],
                            "confidence": "medium"},
        "rollback_instructions": "Revert the commit.",
    }


# ------------------------------------------------------------------ its logs


@dataclass(frozen=True)
class Mix:
    """How the system behaves in one phase."""

    slow_share: float = 0.6        # plannerStep calls over the slow threshold
    failure_rate: float = 0.3      # toolRouter transitions to onFailure
    timeout_share: float = 0.5     # steps that log the tool timeout error
    planner_failure: float = 0.0   # plannerStep transitions straight to onFailure


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _hit(k: int, share: float) -> bool:
    return int((k + 1) * share) > int(k * share)


def write_logs(path: Path, start: datetime, end: datetime, before: Mix,
               after: Mix | None = None, split: datetime = T, shuffle: bool = False,
               step: timedelta = timedelta(minutes=10)) -> Path:
    """One turn of the story every `step` from `start` to `end`; `after` from `split` on."""
    lines: list[str] = []
    when, k = start, 0
    while when < end:
        mix = after if after is not None and when >= split else before
        turn = f"turn-{k}"
        lines.append(json.dumps({
            "timestamp": _iso(when), "type": "llm_call", "session_id": turn, "node": "plannerStep",
            "model": "big", "prompt_tokens": 1200, "completion_tokens": 150,
            "latency_ms": 7200 if _hit(k, mix.slow_share) else 700}))
        lines.append(json.dumps({
            "type": "graph_transition", "timestamp": _iso(when + timedelta(seconds=2)),
            "session_id": turn, "from": "toolRouter",
            "to": "onFailure" if _hit(k, mix.failure_rate) else "summarizeTurn",
            "trigger": "tool_result"}))
        lines.append(json.dumps({
            "timestamp": _iso(when + timedelta(seconds=3)), "type": "llm_call",
            "session_id": turn, "node": "summarizeTurn", "model": "small",
            "prompt_tokens": 300, "completion_tokens": 60, "latency_ms": 400}))
        if _hit(k, mix.planner_failure):
            lines.append(json.dumps({
                "timestamp": _iso(when + timedelta(seconds=1)), "type": "graph_transition",
                "session_id": turn, "from": "plannerStep", "to": "onFailure",
                "trigger": "invalid_plan"}))
        if _hit(k, mix.timeout_share):
            lines.append(json.dumps({
                "timestamp": _iso(when + timedelta(seconds=4)), "type": "error",
                "session_id": turn, "context": "toolRouter",
                "message": f"tool search_web timed out after {30 + k % 7}s"}))
        when += step
        k += 1
    if shuffle:
        random.Random(7).shuffle(lines)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def pattern_ids(source: Path) -> dict[str, str]:
    """type → pattern id of the analysis a night would make of `source`."""
    report = analyze_source(str(source), since="24h").report
    return {p["type"]: p["id"] for p in report["patterns"] if p["severity"] != "info"}


def write_answers(answers: Path, ids: dict[str, str]) -> None:
    """The refiner's answer for each pattern, editing the user's own files."""
    answers.mkdir(exist_ok=True)
    slow, failed, error = ids["slow_llm"], ids["failed_transition"], ids["repeated_error"]
    planner = "conf/flows/story/prompts/planner_step.tmpl"
    graph = "conf/flows/story/graph.flow"
    summary = "conf/flows/story/prompts/summarize_turn.tmpl"
    found = {
        slow: answer(slow, planner, PLANNER, PLANNER.replace(
            "Everything the world remembers, verbatim:\n{{ world_archive }}\n\n", ""),
            "The planner prompt carries the whole world archive; dropping it shortens calls."),
        failed: answer(failed, graph, GRAPH, GRAPH.replace(
            "kind=tool retry=0 ", "kind=tool retry=2 "),
            "toolRouter fails to onFailure; retrying the tool twice should absorb the failures."),
        error: answer(error, summary, SUMMARY, SUMMARY + "If a tool timed out, say so once.\n",
            "The summary names tool timeouts, so toolRouter stops logging each one."),
    }
    for pid, proposal in found.items():
        (answers / f"refine.{pid}.json").write_text(json.dumps(proposal), encoding="utf-8")


# ------------------------------------------------------------------ mgt serve, as a user runs it


def user_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in {"MGT_RUNS_DIR", "ZELLIJ", "ZELLIJ_SESSION_NAME", "MGT_SERVE_NOW"}}
    env.update(PYTHONPATH=str(ROOT), **extra)
    return env


@dataclass
class Setup:
    repo: Path
    ops: Path
    logs: Path
    answers: Path
    env: dict[str, str]

    def schedule(self, forge: str = "local", window: str = "24h") -> None:
        inputs = {"repo": str(self.repo), "source": str(self.logs), "forge": forge,
                  "window": window, "since": "24h"}
        table = ", ".join(f"{k} = {json.dumps(v)}" for k, v in inputs.items())
        (self.ops / "mgt.toml").write_text(
            "[[schedule]]\n"
            'name = "nightly"\n'
            f"machine = {json.dumps(str(PARALLEL))}\n"
            'cron = "0 3 * * *"\n'
            'timezone = "America/New_York"\n'
            f"executor = {json.dumps('replay:' + str(self.answers))}\n"
            f"inputs = {{ {table} }}\n", encoding="utf-8")

    def night(self, now: datetime) -> dict[str, Any]:
        """`mgt serve --once` at `now`; the finished run's summary (`mgt show --json`)."""
        proc = subprocess.run(
            [sys.executable, "-m", "mgt", "serve", "--once", "--json", "--runs-dir", "runs"],
            cwd=self.ops, env={**self.env, "MGT_SERVE_NOW": now.isoformat()},
            capture_output=True, text=True, timeout=600, check=False)
        events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
        finished = [e for e in events if e["event"] == "finished"]
        assert finished, f"no run finished at {now}: {proc.stdout}\n{proc.stderr}"
        run_id = finished[-1]["run_id"]
        summary: dict[str, Any] = json.loads(
            (self.ops / "runs" / run_id / "run.json").read_text(encoding="utf-8"))
        summary["serve_exit"] = proc.returncode
        summary["event"] = finished[-1]
        summary["outputs"] = self.outputs(run_id)
        return summary

    def outputs(self, run_id: str) -> dict[str, Any]:
        proc = subprocess.run(
            [sys.executable, "-m", "mgt", "show", run_id, "--runs-dir", "runs", "--json"],
            cwd=self.ops, env=self.env, capture_output=True, text=True, timeout=120,
            check=False)
        assert proc.returncode == 0, proc.stderr
        shown: dict[str, Any] = json.loads(proc.stdout)
        outputs: dict[str, Any] = shown.get("outputs", {})
        return outputs

    def prs(self, *args: str) -> dict[str, Any]:
        proc = subprocess.run(
            [sys.executable, "-m", "mgt", "prs", "--repo", str(self.repo), "--json", *args],
            cwd=self.ops, env=self.env, capture_output=True, text=True, timeout=120,
            check=False)
        assert proc.returncode == 0, proc.stderr
        listed: dict[str, Any] = json.loads(proc.stdout)
        return listed


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    base = tmp_path / "home of dana"
    repo = make_repo(base)
    ops = base / "ops"
    ops.mkdir()
    tmp = base / "tmp"
    tmp.mkdir()
    logs = write_logs(ops / "story events.jsonl", T - timedelta(hours=30),
                      T - timedelta(hours=6), Mix())
    answers = ops / "answers"
    write_answers(answers, pattern_ids(logs))
    yield Setup(repo, ops, logs, answers, user_env(TMPDIR=str(tmp)))


def night_at(day: int) -> datetime:
    """03:00 New York time, `day` days after the first night."""
    return (T - timedelta(hours=20)).replace(hour=8) + timedelta(days=day)


def records(repo: Path) -> dict[int, dict[str, Any]]:
    directory = repo / ".git" / "mgt" / "prs"
    found = {}
    for path in directory.glob("*.json"):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            continue
        if path.stem.isdigit() and isinstance(record.get("patterns_addressed"), list):
            found[int(path.stem)] = record
    return found


def by_pattern(repo: Path) -> dict[str, tuple[int, dict[str, Any]]]:
    return {r["patterns_addressed"][0]: (n, r) for n, r in records(repo).items()
            if "reverts" not in r}


# ------------------------------------------------------------------ the nights, local forge


def test_nightly_serve_on_a_foreign_repository_local_forge(setup: Setup) -> None:
    setup.schedule()
    ids = pattern_ids(setup.logs)
    assert set(ids) == {"slow_llm", "failed_transition", "repeated_error"}

    # Night 1: one PR per actionable pattern, each on trunk, each editing the user's files.
    first = setup.night(night_at(0))
    assert first["event"]["status"] == "succeeded", first
    assert first["final"] == "filed", first
    filed = by_pattern(setup.repo)
    assert sorted(filed) == sorted(ids.values())
    for _n, record in filed.values():
        assert record["base"] == "trunk"
        assert record["head"].startswith("sleeptime/")
    assert git(setup.repo, "rev-parse", "--abbrev-ref", "HEAD") == "trunk"

    # Night 2, same logs: nothing new, the run ends at `covered`.
    second = setup.night(night_at(1))
    assert second["final"] == "covered", second
    assert len(records(setup.repo)) == 3

    # A human merges two PRs at T with real git (the first branch deleted after its merge)
    # and closes the third by deleting its branch.
    slow_n, slow = filed[ids["slow_llm"]]
    fail_n, fail = filed[ids["failed_transition"]]
    err_n, err = filed[ids["repeated_error"]]
    git(setup.repo, "merge", "--no-ff", "-m", "Merge planner prompt fix", slow["head"], when=T)
    git(setup.repo, "branch", "-d", slow["head"])
    git(setup.repo, "merge", "--no-ff", "-m", "Merge tool retries", fail["head"],
        when=T + timedelta(minutes=5))
    git(setup.repo, "branch", "-D", err["head"])

    # The logs after the merge: the planner got faster, the router fails more often.
    write_logs(setup.logs, T - timedelta(hours=30), T + timedelta(hours=26), Mix(),
               after=Mix(slow_share=0.0, failure_rate=0.7), shuffle=True)

    third = setup.night(night_at(2))
    assert third["event"]["status"] == "succeeded", third
    ledger = third["outputs"]["ledger"]
    verdicts = {v["pr"]: v["verdict"] for v in ledger["verdicts"]}
    assert verdicts == {slow_n: "improved", fail_n: "regressed"}, ledger
    assert [r["pr"] for r in ledger["reverts"]] == [fail_n]
    assert [r["pr"] for r in ledger["rejected"]] == [err_n]
    revert_n = ledger["reverts"][0]["revert_pr"]

    listed = {p["number"]: p for p in setup.prs()["prs"]}
    assert listed[slow_n]["state"] == "merged" and listed[slow_n]["verdict"]["verdict"] == \
        "improved"
    assert listed[fail_n]["verdict"]["verdict"] == "regressed"
    assert listed[fail_n]["revert_pr"] == revert_n
    assert listed[revert_n]["reverts"] == fail_n and listed[revert_n]["state"] == "open"
    # The rejected pattern is proposed again (the refiner is told), on a branch of its own:
    # reusing the closed PR's branch name would make that PR look open again.
    assert listed[err_n]["state"] == "closed"
    again = [p for n, p in listed.items() if n > revert_n]
    assert [p["patterns"] for p in again] == [[ids["repeated_error"]]]
    assert again[0]["state"] == "open" and again[0]["head"] != err["head"]

    # Night 4, same logs: no second verdict, no second revert.
    before = len(records(setup.repo))
    fourth = setup.night(night_at(3))
    assert fourth["event"]["status"] == "succeeded", fourth
    ledger = fourth["outputs"]["ledger"]
    assert ledger["verdicts"] == [] and ledger["reverts"] == []
    assert len(records(setup.repo)) == before


# ------------------------------------------------------------------ how a human merged


def squash_merge(repo: Path, branch: str, when: datetime) -> str:
    """`git merge --squash` + a commit of the human's own, then the branch deleted."""
    git(repo, "merge", "--squash", branch, when=when)
    git(repo, "commit", "-q", "-m", f"Squashed {branch}", when=when)
    git(repo, "branch", "-D", branch)
    return git(repo, "rev-parse", "HEAD")


def rebase_merge(repo: Path, branch: str, when: datetime) -> str:
    """The branch rebased onto trunk (its commit re-made at `when`), trunk fast-forwarded."""
    git(repo, "checkout", "-q", branch)
    git(repo, "rebase", "-q", "trunk", when=when)
    git(repo, "checkout", "-q", "trunk")
    git(repo, "merge", "-q", "--ff-only", branch, when=when)
    git(repo, "branch", "-D", branch)
    return git(repo, "rev-parse", "HEAD")


def test_squash_and_rebase_merges_are_merged_changes_with_verdicts(setup: Setup) -> None:
    setup.schedule()
    ids = pattern_ids(setup.logs)
    setup.night(night_at(0))
    filed = by_pattern(setup.repo)
    slow_n, slow = filed[ids["slow_llm"]]
    fail_n, fail = filed[ids["failed_transition"]]
    # Another commit on trunk first, so the PR commits are not on top of it any more.
    (setup.repo / "README.md").write_text("# story engine\n\nNow with docs.\n")
    git(setup.repo, "commit", "-q", "-am", "docs", when=T - timedelta(hours=2))
    squashed = squash_merge(setup.repo, slow["head"], T)
    rebased = rebase_merge(setup.repo, fail["head"], T + timedelta(minutes=5))
    write_logs(setup.logs, T - timedelta(hours=30), T + timedelta(hours=26), Mix(),
               after=Mix(slow_share=0.0, failure_rate=0.7))

    listed = {p["number"]: p for p in setup.prs()["prs"]}
    assert listed[slow_n]["state"] == "merged" and listed[slow_n]["merge_sha"] == squashed
    assert listed[fail_n]["state"] == "merged" and listed[fail_n]["merge_sha"] == rebased
    assert listed[slow_n]["merged_at"] == T.isoformat().replace("+00:00", "Z")

    third = setup.night(night_at(2))
    ledger = third["outputs"]["ledger"]
    verdicts = {v["pr"]: v["verdict"] for v in ledger["verdicts"]}
    assert verdicts == {slow_n: "improved", fail_n: "regressed"}, ledger
    assert ledger["rejected"] == []
    (revert,) = ledger["reverts"]
    assert revert["pr"] == fail_n
    # The revert undoes the rebased commit: the router is back to retry=0 on its branch.
    flow = git(setup.repo, "show", f"{revert['branch']}:conf/flows/story/graph.flow")
    assert "kind=tool retry=0" in flow and "Now with docs." in git(
        setup.repo, "show", f"{revert['branch']}:README.md")


# ------------------------------------------------------------------ the nights, GitHub forge


def github_setup(setup: Setup, gh: GitHubStandIn) -> None:
    """The repository's remote is a bare repository the stand-in serves as acme/story-engine."""
    git(setup.repo, "remote", "add", "origin", str(gh.remote))
    git(setup.repo, "push", "-q", "origin", "trunk")
    toml = setup.repo / "mgt.toml"
    toml.write_text(toml.read_text() + 'github_repo = "acme/story-engine"\n')
    git(setup.repo, "commit", "-q", "-am", "mgt: the GitHub repository",
        when=T - timedelta(days=9))
    git(setup.repo, "push", "-q", "origin", "trunk")
    setup.env.update(GITHUB_API_URL=gh.url, GITHUB_TOKEN=TOKEN,
                     NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    setup.env.pop("GITHUB_REPOSITORY", None)


TOKEN = "ghp_story"


def rest(gh: GitHubStandIn, method: str, path: str, body: Any = None) -> Any:
    """A reviewer's call to the GitHub API."""
    response = httpx.request(method, f"{gh.url}/repos/{gh.repository}{path}", json=body,
                             headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert response.status_code < 300, response.text
    return response.json()


@pytest.fixture
def gh(tmp_path: Path) -> Iterator[GitHubStandIn]:
    remote = tmp_path / "remote story.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "trunk", str(remote)], check=True)
    with GitHubStandIn(remote, "acme/story-engine", token=TOKEN, login="dana") as stand_in:
        yield stand_in


def by_pattern_github(gh: GitHubStandIn) -> dict[str, tuple[int, dict[str, Any]]]:
    out = {}
    for n, pull in gh.pulls.items():
        blocks = parse_blocks(pull["body"])
        if blocks and blocks[0]["kind"] == "pr":
            out.setdefault(blocks[0]["patterns"][0]["id"], (n, pull))
    return out


def test_nightly_serve_on_a_foreign_repository_github_forge(
    setup: Setup, gh: GitHubStandIn,
) -> None:
    github_setup(setup, gh)
    setup.schedule(forge="github")
    ids = pattern_ids(setup.logs)

    first = setup.night(night_at(0))
    assert first["final"] == "filed", first
    filed = by_pattern_github(gh)
    assert sorted(filed) == sorted(ids.values())
    assert {p["base"]["ref"] for _, p in filed.values()} == {"trunk"}

    # The user's own PR with their own token (no block, not a sleeptime branch) and a
    # stranger's PR copying a sleeptime block: neither covers nor is judged.
    git(setup.repo, "push", "-q", "origin", "trunk:refs/heads/feature/docs")
    rest(gh, "POST", "/pulls", {"title": "docs", "head": "feature/docs", "base": "trunk",
                                "body": "Just docs."})
    copied = dict(gh.pulls[filed[ids["repeated_error"]][0]])
    stranger = max(gh.pulls) + 1
    gh.pulls[stranger] = {**copied, "number": stranger, "user": {"login": "mallory"},
                          "author_association": "NONE"}
    gh.state.next_number = stranger + 1

    second = setup.night(night_at(1))
    assert second["final"] == "covered", second
    assert len(gh.pulls) == stranger

    slow_n, slow = filed[ids["slow_llm"]]
    fail_n, _ = filed[ids["failed_transition"]]
    err_n, _ = filed[ids["repeated_error"]]
    gh.now = T
    rest(gh, "PUT", f"/pulls/{slow_n}/merge", {"merge_method": "squash"})
    subprocess.run(["git", "-C", str(gh.remote), "branch", "-D", slow["head"]["ref"]],
                   check=True)  # "delete branch" after the merge
    gh.now = T + timedelta(minutes=5)
    rest(gh, "PUT", f"/pulls/{fail_n}/merge", {"merge_method": "rebase"})
    rest(gh, "PATCH", f"/pulls/{err_n}", {"state": "closed"})
    gh.now = None
    write_logs(setup.logs, T - timedelta(hours=30), T + timedelta(hours=26), Mix(),
               after=Mix(slow_share=0.0, failure_rate=0.7), shuffle=True)

    third = setup.night(night_at(2))
    assert third["event"]["status"] == "succeeded", third
    ledger = third["outputs"]["ledger"]
    assert {v["pr"]: v["verdict"] for v in ledger["verdicts"]} == \
        {slow_n: "improved", fail_n: "regressed"}, ledger
    assert [r["pr"] for r in ledger["rejected"]] == [err_n]
    (revert,) = ledger["reverts"]
    assert revert["pr"] == fail_n
    revert_pull = gh.pulls[revert["revert_pr"]]
    assert revert_pull["base"]["ref"] == "trunk"
    flow = subprocess.run(["git", "-C", str(gh.remote), "show",
                           f"{revert_pull['head']['ref']}:conf/flows/story/graph.flow"],
                          capture_output=True, text=True, check=True).stdout
    assert "kind=tool retry=0" in flow
    assert git(setup.repo, "rev-parse", "--abbrev-ref", "HEAD") == "trunk"

    listed = {p["number"]: p for p in setup.prs("--forge", "github")["prs"]}
    assert listed[slow_n]["verdict"]["verdict"] == "improved"
    assert listed[fail_n]["revert_pr"] == revert["revert_pr"]
    assert listed[err_n]["state"] == "closed"
    assert stranger not in listed and stranger - 1 not in listed  # mallory's and the docs PR

    fourth = setup.night(night_at(3))
    ledger = fourth["outputs"]["ledger"]
    assert ledger["verdicts"] == [] and ledger["reverts"] == [], ledger
    comments = [c for cs in gh.comments.values() for c in cs]
    assert len(comments) == 2  # one verdict each, never twice


# ------------------------------------------------------------------ logs that do not cover it all


def answer_on_trunk(setup: Setup, pattern: str, path: str, old: str, new: str) -> None:
    """The refiner's answer for `pattern`, an edit of `path` as it is on trunk now."""
    text = git(setup.repo, "show", f"trunk:{path}") + "\n"
    proposal = answer(pattern, path, text, text.replace(old, new), "Guard the plan.")
    (setup.answers / f"refine.{pattern}.json").write_text(json.dumps(proposal))


def test_an_export_ending_inside_the_after_window_waits_for_the_rest(setup: Setup) -> None:
    setup.schedule()
    ids = pattern_ids(setup.logs)
    setup.night(night_at(0))
    slow_n, slow = by_pattern(setup.repo)[ids["slow_llm"]]
    git(setup.repo, "merge", "--no-ff", "-m", "Merge planner fix", slow["head"], when=T)
    # The export was made six hours after the merge; the 24h after-window has ended by the
    # clock, but the file does not reach its end.
    write_logs(setup.logs, T - timedelta(hours=30), T + timedelta(hours=6), Mix(),
               after=Mix(slow_share=0.0))
    third = setup.night(night_at(2))
    ledger = third["outputs"]["ledger"]
    assert [(v["pr"], v["verdict"], v["recorded"]) for v in ledger["verdicts"]] == \
        [(slow_n, "pending", False)], ledger
    assert "the logs end before the after-window does" in ledger["verdicts"][0]["reason"]
    assert "mgt_verdict" not in records(setup.repo)[slow_n]
    assert third["final"] == "covered"  # the merged change still covers its pattern

    write_logs(setup.logs, T - timedelta(hours=30), T + timedelta(hours=26), Mix(),
               after=Mix(slow_share=0.0))
    fourth = setup.night(night_at(3))
    ledger = fourth["outputs"]["ledger"]
    assert [(v["pr"], v["verdict"], v["recorded"]) for v in ledger["verdicts"]] == \
        [(slow_n, "improved", True)], ledger


def test_merges_older_than_the_logs_retention(setup: Setup) -> None:
    setup.schedule()
    ids = pattern_ids(setup.logs)
    setup.night(night_at(0))
    filed = by_pattern(setup.repo)
    slow_n, slow = filed[ids["slow_llm"]]
    fail_n, fail = filed[ids["failed_transition"]]
    err_n, err = filed[ids["repeated_error"]]
    git(setup.repo, "merge", "--no-ff", "-m", "Merge planner fix", slow["head"], when=T)
    git(setup.repo, "merge", "--no-ff", "-m", "Merge retries", fail["head"], when=T)
    # A merge long before anything the logs still hold: neither window has an event.
    git(setup.repo, "merge", "--no-ff", "-m", "Merge timeouts", err["head"],
        when=T - timedelta(days=6))
    # Retention: the logs start an hour after the merge. The planner now also fails
    # straight to onFailure (a critical pattern on a node the retry PR touched), which
    # may or may not be new: nothing before the merge is left to tell.
    write_logs(setup.logs, T + timedelta(hours=1), T + timedelta(hours=26),
               Mix(slow_share=0.0, failure_rate=0.05, planner_failure=0.5))
    planner_fail = "failed-transition-plannerstep-onfailure"
    assert planner_fail in pattern_ids(setup.logs).values()
    answer_on_trunk(setup, planner_fail, "conf/flows/story/graph.flow",
                    "kind=llm  prompt=prompts/planner_step.tmpl",
                    "kind=llm  validate=plan prompt=prompts/planner_step.tmpl")

    third = setup.night(night_at(2))
    ledger = third["outputs"]["ledger"]
    verdicts = {v["pr"]: v for v in ledger["verdicts"]}
    # Compared with the figures the analysis gave when the PRs were filed, and said so.
    assert verdicts[slow_n]["verdict"] == "improved", verdicts
    assert "compared with the figures at filing" in verdicts[slow_n]["reason"]
    assert verdicts[fail_n]["verdict"] == "improved", verdicts
    assert ledger["reverts"] == []  # no regression made up from an empty before-window
    # Both windows empty (a count, no baseline at filing): a final "unknown", recorded,
    # not "did not help", and no longer covering its pattern.
    assert (verdicts[err_n]["verdict"], verdicts[err_n]["recorded"]) == ("unknown", True)
    assert ledger["ineffective"] == []
    assert err_n not in [c["pr"] for c in ledger["covered"]]
    listed = {p["number"]: p for p in setup.prs()["prs"]}
    assert listed[err_n]["verdict"]["verdict"] == "unknown"
    (entry,) = listed[slow_n]["verdict"]["patterns"]
    assert entry["baseline"] == "filing" and entry["before"]["slow_share"] > 0.5
    shown = subprocess.run(
        [sys.executable, "-m", "mgt", "prs", "--repo", str(setup.repo)], cwd=setup.ops,
        env=setup.env, capture_output=True, text=True, timeout=120, check=False)
    assert shown.returncode == 0 and "unknown" in shown.stdout, shown.stderr


# ------------------------------------------------------------------ hand-edited PR bodies


def corrupt(body: str) -> str:
    """The metadata block cut short, as a careless edit of the description leaves it."""
    start = body.index("<!-- mgt:sleeptime")
    return body[:start + 120] + "\n\nEdited by Dana: please look at the retry.\n"


def test_a_corrupted_block_on_an_open_local_pr_still_covers_its_pattern(setup: Setup) -> None:
    setup.schedule()
    ids = pattern_ids(setup.logs)
    setup.night(night_at(0))
    n, _record = by_pattern(setup.repo)[ids["failed_transition"]]
    path = setup.repo / ".git" / "mgt" / "prs" / f"{n}.json"
    record = json.loads(path.read_text())
    record["body"] = corrupt(record["body"])
    path.write_text(json.dumps(record))
    (setup.repo / ".git" / "mgt" / "prs" / "7.json").write_text("[not a record")
    (setup.repo / ".git" / "mgt" / "prs" / "8.json").write_text('{"head": 5, "body": []}')

    second = setup.night(night_at(1))
    assert second["final"] == "covered", second
    assert len(records(setup.repo)) == 3
    listed = {p["number"]: p for p in setup.prs()["prs"]}
    assert listed[n]["patterns"] == [ids["failed_transition"]]

    # Merged with its block unreadable: what it addressed is known by id only, so there is
    # no figure to judge it by. That is `unknown`, not "did not help".
    git(setup.repo, "merge", "--no-ff", "-m", "Merge retries", _record["head"], when=T)
    write_logs(setup.logs, T - timedelta(hours=30), T + timedelta(hours=26), Mix(),
               after=Mix(failure_rate=0.05))
    third = setup.night(night_at(2))
    ledger = third["outputs"]["ledger"]
    assert [(v["pr"], v["verdict"]) for v in ledger["verdicts"]] == [(n, "unknown")], ledger
    assert ledger["ineffective"] == [] and ledger["reverts"] == []


def test_a_corrupted_block_on_an_open_github_pr_still_covers_its_pattern(
    setup: Setup, gh: GitHubStandIn,
) -> None:
    github_setup(setup, gh)
    setup.schedule(forge="github")
    ids = pattern_ids(setup.logs)
    setup.night(night_at(0))
    n, pull = by_pattern_github(gh)[ids["failed_transition"]]
    rest(gh, "PATCH", f"/pulls/{n}", {"body": corrupt(pull["body"])})
    assert parse_blocks(gh.pulls[n]["body"]) == []

    second = setup.night(night_at(1))
    assert second["final"] == "covered", second  # no second PR for the same pattern
    assert len(gh.pulls) == 3
    listed = {p["number"]: p for p in setup.prs("--forge", "github")["prs"]}
    assert listed[n]["patterns"] == [ids["failed_transition"]]
