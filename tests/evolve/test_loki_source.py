"""A Loki URL as the source of every bundled machine, with credentials that are never recorded.

The documented commands run verbatim (`--input source=URL`), against the Loki
stand-in (tests/fakes/loki.py) over real HTTP holding the sample logs moved
into the last 24 hours and requiring HTTP Basic auth. The credentials are in
the URL; the tests check that the requests carried them and that no file of
the run, no output, no prompt and no PR body holds them.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mgt.logs.credentials import redact_url, remember_credentials, remembered_credentials
from tests.evolve.e2e_support import LOGS, ROOT, sample
from tests.evolve.realrepo_support import (
    REPLAY,
    git,
    github_remote,
    mgt,
    mgt_env,
    snapshot,
    user_repo,
    worktrees,
)
from tests.fakes.claude_cli import ClaudeCLI
from tests.fakes.github_api import GitHubStandIn
from tests.fakes.loki import FakeLoki

USER = "4242"
SECRET = "glc_s3cret-Passw0rd"


def loki_url(loki: FakeLoki, password: str = SECRET) -> str:
    return f"http://{USER}:{password}@127.0.0.1:{loki.port}"


def assert_no_secret(*texts: str, run_dir: Path | None = None) -> None:
    for text in texts:
        assert SECRET not in text
    if run_dir is not None:
        for path in run_dir.rglob("*"):
            if path.is_file():
                assert SECRET.encode() not in path.read_bytes(), path


def basic_auth_used(loki: FakeLoki) -> bool:
    expected = "Basic " + base64.b64encode(f"{USER}:{SECRET}".encode()).decode()
    return bool(loki.query_requests) and all(
        r.headers.get("authorization") == expected for r in loki.query_requests)


@pytest.fixture
def loki() -> FakeLoki:
    from tests.evolve.realrepo_support import loki_with_sample_logs

    server = FakeLoki(user=USER, password=SECRET)
    loki_with_sample_logs(server, LOGS)
    return server


def test_analyze_mgt_takes_a_loki_url_as_its_header_says(loki: FakeLoki, tmp_path: Path) -> None:
    with loki:
        result = mgt(tmp_path, "exec", str(ROOT / "machines" / "analyze.mgt"), "--json",
                     "--input", f"source={loki_url(loki)}")
    assert result.code == 0, result.stderr
    assert result.summary["final"] == "report"
    report = result.summary["outputs"]["analyze"]
    assert {"slow-llm-dmscene", "token-bloat-dmscene"} <= {p["id"] for p in report["patterns"]}
    assert basic_auth_used(loki)
    run = json.loads((result.run_dir / "run.json").read_text(encoding="utf-8"))
    assert run["inputs"]["source"] == f"http://127.0.0.1:{loki.port}"
    assert_no_secret(result.stdout, result.stderr, run_dir=result.run_dir)


def test_evolve_and_evolve_analyst_take_a_loki_url(loki: FakeLoki, tmp_path: Path) -> None:
    repo = user_repo(tmp_path)
    before = snapshot(repo)
    with loki:
        for n, machine in enumerate(("evolve.mgt", "evolve-analyst.mgt")):
            result = mgt(tmp_path, "exec", str(ROOT / "machines" / machine), "--json", *REPLAY,
                         "--input", f"source={loki_url(loki)}", "--input", f"repo={repo}")
            assert result.code == 0, result.stderr
            assert result.summary["final"] == "filed"
            assert_no_secret(result.stdout, result.stderr, run_dir=result.run_dir)
            branch = result.summary["outputs"]["open_pr"]["branch_name"]
            assert (repo / ".git" / "mgt" / "prs" / f"{n + 1}.json").is_file()
            git(repo, "branch", "-D", branch)  # the next run starts from the same state
    assert basic_auth_used(loki)
    assert snapshot(repo) == before


def test_a_wrong_password_in_the_url_is_named_without_being_shown(
    loki: FakeLoki, tmp_path: Path
) -> None:
    wrong = "Wr0ng-pa55word"
    with loki:
        result = mgt(tmp_path, "exec", str(ROOT / "machines" / "evolve.mgt"), "--json", *REPLAY,
                     "--input", f"source={loki_url(loki, wrong)}")
    assert result.code == 1
    assert "access refused (HTTP 401" in result.stderr
    assert wrong not in result.stdout + result.stderr
    for path in result.run_dir.rglob("*"):
        if path.is_file():
            assert wrong.encode() not in path.read_bytes()


@pytest.mark.e2e
def test_the_documented_command_with_loki_github_and_a_model(
    claude_cli: ClaudeCLI, loki: FakeLoki, tmp_path: Path
) -> None:
    """docs/evolve.md's "for real" command, word for word but for the URLs and the path."""
    repo = user_repo(tmp_path)
    bare, config = github_remote(tmp_path, repo)
    before = snapshot(repo)
    answer = sample()
    claude_cli.server.push({"structured": answer})
    token = "ghp_documented_command"
    with loki, GitHubStandIn(bare, "acme/dm-graph", token=token) as github:
        env = mgt_env(tmp_path, GIT_CONFIG_GLOBAL=str(config), GITHUB_API_URL=github.url,
                      GITHUB_TOKEN=token)
        proc = subprocess.run(
            [sys.executable, "-m", "mgt", "exec", "machines/evolve.mgt", "--executor", "claude",
             "--input", f"source={loki_url(loki)}", "--input", f"repo={repo}",
             "--input", "forge=github", "--budget-usd", "0.50",
             "--json", "--runs-dir", str(tmp_path / "runs")],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False,
        )
        pulls = list(github.pulls.values())
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["final"] == "filed"
    pr = summary["outputs"]["open_pr"]
    (pull,) = pulls
    assert (pull["head"]["ref"], pull["head"]["sha"]) == (pr["branch_name"], pr["commit_sha"])
    assert git(bare, "rev-parse", f"refs/heads/{pr['branch_name']}").strip() == pr["commit_sha"]
    assert basic_auth_used(loki)
    (call,) = claude_cli.server.message_requests
    run_dir = tmp_path / "runs" / summary["run_id"]
    assert_no_secret(proc.stdout, proc.stderr, json.dumps(call.body),
                     call.first_user_text, pull["body"], run_dir=run_dir)
    assert snapshot(repo, new_branch=pr["branch_name"]) == before
    assert worktrees(repo) == [f"worktree {repo.resolve()}"]


@pytest.mark.parametrize(("given", "clean", "creds"), [
    ("https://u:p@logs.example.com", "https://logs.example.com", ("u", "p")),
    ("http://4242:p%40ss%3Aw@127.0.0.1:3100/loki/", "http://127.0.0.1:3100/loki/",
     ("4242", "p@ss:w")),
    ("https://token@[::1]:8443/x?q=1", "https://[::1]:8443/x?q=1", ("token", None)),
    ("https://logs.example.com/a@b", "https://logs.example.com/a@b", None),
    ("HTTPS://U:P@Logs.Example.com", "https://logs.example.com", ("U", "P")),
    ("HTTP://127.0.0.1:3100", "http://127.0.0.1:3100", None),
    ("http://:t0ken@127.0.0.1:3101", "http://127.0.0.1:3101", ("", "t0ken")),
    ("https://u:sec@ret@host.example/p", "https://host.example/p", ("u", "sec@ret")),
])
def test_userinfo_is_taken_out_and_remembered(
    given: str, clean: str, creds: tuple[str, str | None] | None
) -> None:
    assert redact_url(given) == clean
    assert remember_credentials(given) == clean
    assert remembered_credentials(clean) == creds
    assert redact_url("/var/log/events.jsonl") == "/var/log/events.jsonl"


@pytest.mark.parametrize("url", ["https://u:s3cr3t@host:99x/", "https://u:s3cr3t@[::1/x",
                                 "https://u:s3cr3t@"])
def test_a_malformed_url_loses_its_userinfo_too(url: str) -> None:
    assert "s3cr3t" not in redact_url(url)
    assert "s3cr3t" not in remember_credentials(url)


def test_a_token_alone_in_the_url_is_sent_as_a_bearer_token(tmp_path: Path) -> None:
    with FakeLoki(bearer="t0k3n") as loki:
        loki_with = f"http://:t0k3n@127.0.0.1:{loki.port}"
        from tests.evolve.realrepo_support import loki_with_sample_logs

        loki_with_sample_logs(loki, LOGS)
        result = mgt(tmp_path, "exec", str(ROOT / "machines" / "analyze.mgt"), "--json",
                     "--input", f"source={loki_with}")
    assert result.code == 0, result.stderr
    assert all(r.headers.get("authorization") == "Bearer t0k3n" for r in loki.query_requests)
    for path in result.run_dir.rglob("*"):
        if path.is_file():
            assert b"t0k3n" not in path.read_bytes()
