"""Preflight: each thing a run needs, missing, fails the run in one line before any model call.

Every case runs `mgt exec machines/evolve.mgt` as a user would and checks the
exit code, that the error is one line naming what to fix, that the run
stopped at `preflight` (no attempt of the model state `refine` exists in the
journal), and, for `--dry-run`, the same line. One case drives the real Claude
Code CLI against the Messages-API stand-in and counts the requests it got: none.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.evolve.e2e_support import LOGS
from tests.evolve.realrepo_support import MACHINE, evolve, git, mgt, mgt_env, user_repo
from tests.fakes.claude_cli import ClaudeCLI
from tests.fakes.github_api import GitHubStandIn
from tests.fakes.loki import FakeLoki

TOKEN = "ghp_preflight_token"
URL = "https://github.com/acme/dm-graph.git"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@dataclass
class Case:
    inputs: list[str]
    env: dict[str, str] = field(default_factory=dict)
    github: GitHubStandIn | None = None
    loki: FakeLoki | None = None


def github_repo(tmp: Path, *, remote: str = URL, repository: str = "acme/dm-graph",
                push: bool = True, token: str | None = TOKEN,
                server_token: str = TOKEN, behind: Path | None = None) -> Case:
    repo = user_repo(tmp, dirty=False)
    bare = tmp / "remote.git"
    subprocess.run(["git", "init", "--quiet", "--bare", str(bare)], check=True)
    git(repo, "remote", "add", "origin", remote)
    api = GitHubStandIn(bare, repository, token=server_token, push=push)
    config = tmp / "gitconfig"  # the remote's URL reads as GitHub, git reaches `behind`
    config.write_text(f'[url "{(behind or bare).as_uri()}"]\n\tinsteadOf = {remote}\n',
                      encoding="utf-8")
    env = {"GITHUB_API_URL": api.url, "GIT_CONFIG_GLOBAL": str(config)}
    if token is not None:
        env["GITHUB_TOKEN"] = token
    return Case([f"repo={repo}", "forge=github"], env, github=api)


def _no_source(tmp: Path) -> Case:
    return Case([f"source={tmp / 'missing.jsonl'}"])


def _unreachable_loki(tmp: Path) -> Case:
    return Case([f"source=http://127.0.0.1:{closed_port()}"])


def _loki_refusing(tmp: Path) -> Case:
    loki = FakeLoki(user="4242", password="right")
    return Case([f"source=http://4242:wrong@127.0.0.1:{loki.port}"], loki=loki)


def _no_repo(tmp: Path) -> Case:
    return Case([f"repo={tmp / 'nowhere'}"])


def _no_commit(tmp: Path) -> Case:
    repo = tmp / "empty"
    repo.mkdir()
    git(repo, "init", "--quiet")
    (repo / "a.txt").write_text("a\n", encoding="utf-8")
    return Case([f"repo={repo}"])


def _bad_mgt_toml(tmp: Path) -> Case:
    repo = user_repo(tmp, dirty=False)
    (repo / "mgt.toml").write_text("[evolve]\nmust_pass = 3\n", encoding="utf-8")
    return Case([f"repo={repo}"])


def _github_plain_dir(tmp: Path) -> Case:
    return Case(["forge=github"], env={"GITHUB_TOKEN": TOKEN})


def _no_sandbox(tmp: Path) -> Case:
    return Case([f"repo={user_repo(tmp, dirty=False)}"],
                env={"MGT_BWRAP": str(tmp / "no-such-bwrap")})


CASES: dict[str, tuple[Callable[[Path], Case], str]] = {
    "no sandbox for must_pass": (_no_sandbox, "no sandbox for must_pass (model-written code)"),
    "missing event file": (_no_source, "missing.jsonl does not exist"),
    "Loki unreachable": (_unreachable_loki, "cannot connect"),
    "Loki refuses the credentials": (_loki_refusing, "access refused (HTTP 401"),
    "no repository": (_no_repo, "nowhere does not exist or is not a directory"),
    "repository without a commit": (_no_commit, "has no commit yet"),
    "malformed mgt.toml": (_bad_mgt_toml, "[evolve].must_pass: must be a list"),
    "github forge on a plain directory": (_github_plain_dir, "is a plain directory"),
    "github forge without a token": (lambda t: github_repo(t, token=None),
                                     "forge github needs a token: set GITHUB_TOKEN"),
    "github forge with a bad token": (lambda t: github_repo(t, token="ghp_wrong"),
                                      "GitHub refused the token"),
    "github forge, unknown repository": (lambda t: github_repo(t, repository="acme/other"),
                                         "acme/dm-graph (from remote 'origin') was not found"),
    "github forge, remote not on GitHub": (lambda t: github_repo(t, remote=str(t / "x.git")),
                                           "cannot tell which GitHub repository"),
    "github forge, read-only token": (lambda t: github_repo(t, push=False),
                                      "may not push to acme/dm-graph"),
    "github forge, remote unreachable": (lambda t: github_repo(t, behind=t / "gone.git"),
                                         "git cannot reach remote 'origin'"),
}


def one_line(stderr: str, expected: str) -> str:
    lines = [line for line in stderr.splitlines() if expected in line]
    assert lines, stderr
    assert "Traceback" not in stderr
    return lines[0]


@pytest.mark.parametrize("name", list(CASES))
def test_preflight_fails_in_one_line_before_any_model_call(name: str, tmp_path: Path) -> None:
    make, expected = CASES[name]
    case = make(tmp_path)
    servers = [s for s in (case.github, case.loki) if s is not None]
    for server in servers:
        server.__enter__()
    try:
        env = mgt_env(tmp_path, **case.env)
        result = evolve(tmp_path, *case.inputs, env=env)
        assert result.code == 1, (result.stdout, result.stderr)
        one_line(result.stderr, expected)
        assert result.summary["path"] == ["preflight", "failed"]
        assert not (result.run_dir / "states" / "refine").exists()
        assert not (result.run_dir / "states" / "prepare_repo").exists()

        # --dry-run runs the same preflight and fails with the same line, writing nothing.
        args = ["exec", str(MACHINE), "--dry-run"]
        for item in case.inputs:
            args += ["--input", item]
        (tmp_path / "dry").mkdir()
        dry = mgt(tmp_path / "dry", *args, env=env)
        assert dry.code == 2
        one_line(dry.stderr, expected)
        assert not (tmp_path / "dry" / "runs").exists()
    finally:
        for server in servers:
            server.__exit__(None, None, None)


def test_the_default_inputs_pass_the_preflight_in_a_dry_run(tmp_path: Path) -> None:
    result = mgt(tmp_path, "exec", str(MACHINE), "--dry-run")
    assert result.code == 0, result.stderr
    assert f'"source": {{"kind": "file", "source": "{LOGS}"}}' in result.stdout


def test_no_source_means_grafana_loki_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mgt.evolve.preflight import check_source
    from mgt.runtime.context import StepContext, StepFailure

    monkeypatch.chdir(tmp_path)  # no .tidepool.env above
    ctx = StepContext(run_id="r", run_dir=tmp_path, attempt_dir=tmp_path, state="preflight",
                      attempt=1, machine_inputs={}, bindings={}, outputs={}, cwd=tmp_path)
    with FakeLoki(bearer="b3arer") as loki:
        monkeypatch.setenv("GRAFANA_LOKI_URL", loki.url)
        monkeypatch.setenv("GRAFANA_LOKI_BEARER", "b3arer")
        assert check_source(ctx, None) == {"kind": "loki", "source": loki.url}
        assert [r.path for r in loki.requests] == ["/loki/api/v1/query_range"]
        assert loki.requests[0].params["limit"] == "1"
    monkeypatch.setenv("GRAFANA_LOKI_URL", f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(StepFailure, match="no source given: GRAFANA_LOKI_URL is used"):
        check_source(ctx, None)


@pytest.mark.e2e
def test_a_refused_token_costs_no_model_call(claude_cli: ClaudeCLI, tmp_path: Path) -> None:
    case = github_repo(tmp_path, token="ghp_wrong")
    assert case.github is not None
    with case.github:
        result = evolve(tmp_path, *case.inputs, env=mgt_env(tmp_path, **case.env),
                        options=("--executor", "claude"))
    assert result.code == 1
    one_line(result.stderr, "GitHub refused the token")
    assert claude_cli.server.message_requests == []
    assert result.summary["cost_usd"] == 0
