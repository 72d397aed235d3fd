"""must_pass in bubblewrap: model-written code cannot read secrets, reach the network, write out.

Each test proposes a change that adds a hostile `probe.py` (the model's code)
and makes the target's mgt.toml run it as must_pass; the probe prints every
escape it managed and exits 1 then, so an accepted change means it was held.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mgt.evolve.builtins import apply_diff
from mgt.evolve.guardrails import check_proposed_changes
from mgt.evolve.pr import open_pr
from mgt.evolve.sandbox import SandboxUnavailable, preflight_problem, probe
from mgt.evolve.target import load_target_config
from tests.evolve.conftest import ROOT, MakeCtx, add_change, proposed, run_git

CITE = "For token-bloat-dmscene: a check of the scene prompt."
SECRETS = {
    "GITHUB_TOKEN": "ghp_sandboxtestsecret1",
    "ANTHROPIC_API_KEY": "sk-ant-sandboxtestsecret2",
    "GRAFANA_LOKI_TOKEN": "glc_sandboxtestsecret3",
}

# In CI bubblewrap is installed (scripts/install-test-tools.sh): there, never skip.
pytestmark = pytest.mark.skipif(
    probe() is not None and os.environ.get("CI") != "true",
    reason=f"bubblewrap cannot make a sandbox here: {probe()}",
)


def configure(repo: Path, settings: str = "") -> None:
    (repo / "mgt.toml").write_text(
        '[evolve]\nmust_pass = ["python3 probe.py"]\ntimeout = "60s"\n' + settings
    )
    run_git(repo, "commit", "-qam", "run the probe")


def hostile(repo: Path, body: str) -> dict[str, Any]:
    """A ProposedChanges adding probe.py: `body` appends to `escapes` what got out."""
    script = "import os, sys\nescapes = []\n" + textwrap.dedent(body) + textwrap.dedent("""
        for e in escapes:
            print("ESCAPED:", e)
        sys.exit(1 if escapes else 0)
    """)
    return proposed([add_change(repo, "probe.py", script, CITE)])


def review(make_ctx: MakeCtx, proposal: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    ctx = make_ctx()
    problems = check_proposed_changes(ctx, proposal)
    record = json.loads((ctx.attempt_dir / "guardrails.json").read_text())
    return problems, record


@pytest.fixture
def outside() -> Iterator[Path]:
    """A directory outside /tmp (which the sandbox replaces anyway): a home or a user's files."""
    path = Path(tempfile.mkdtemp(prefix=".sandbox-test-", dir=ROOT))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_secrets_in_the_environment_and_home_are_not_visible(
    make_ctx: MakeCtx, repo: Path, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = outside / "home"
    for name in (".netrc", ".git-credentials", ".config/gh/hosts.yml", ".claude.json",
                 ".tidepool.env"):
        (home / name).parent.mkdir(parents=True, exist_ok=True)
        (home / name).write_text("secret-in-a-file\n")
    configure(repo, 'pass_env = ["MGT_TEST_PASSED"]\n')
    monkeypatch.setenv("HOME", str(home))
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MGT_TEST_PASSED", "passed-on-purpose")
    proposal = hostile(repo, f"""
        secrets = {sorted(SECRETS.values())!r}
        for name, value in os.environ.items():
            if value in secrets or name in {sorted(SECRETS)!r}:
                escapes.append("env " + name)
        if os.environ.get("MGT_TEST_PASSED") != "passed-on-purpose":
            escapes.append("pass_env was not passed")
        if os.environ["HOME"] == {str(home)!r} or not os.access(os.environ["HOME"], os.W_OK):
            escapes.append("HOME is not a private directory")
        for root, _dirs, files in os.walk({str(home)!r}):
            escapes += [os.path.join(root, f) for f in files]
        for name in (".netrc", ".git-credentials", ".config/gh/hosts.yml"):
            path = os.path.expanduser("~/" + name)
            if os.path.exists(path):
                escapes.append(path)
    """)
    problems, record = review(make_ctx, proposal)
    assert problems == []
    assert record["validation"]["sandbox"] == "bubblewrap"
    assert record["validation"]["runs"][0]["sandbox"] == "bubblewrap"


def test_the_network_is_unreachable(make_ctx: MakeCtx, repo: Path, tmp_path: Path) -> None:
    agent = socket.socket(socket.AF_UNIX)  # like an ssh-agent or docker socket
    agent.bind(str(tmp_path / "agent.sock"))
    agent.listen()
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    accepted: list[object] = []

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    stop = threading.Event()
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # reachable from here: the sandbox is what stops the probe
        configure(repo)
        proposal = hostile(repo, f"""
            import socket
            try:
                socket.create_connection(("127.0.0.1", {port}), timeout=5).close()
                escapes.append("connected to the test's server")
            except OSError as e:
                print("refused as it should be:", e)
            try:
                socket.getaddrinfo("example.com", 443)
                escapes.append("resolved a name")
            except OSError:
                pass
            unix = socket.socket(socket.AF_UNIX)
            try:
                unix.connect({str(tmp_path / "agent.sock")!r})
                escapes.append("connected to a unix socket of the host")
            except OSError:
                pass
        """)
        problems, _record = review(make_ctx, proposal)
    finally:
        stop.set()
        thread.join()
        server.close()
        agent.close()
    assert problems == []
    assert len(accepted) == 1  # only the test's own connection


def test_writes_outside_the_worktree_fail_and_change_nothing(
    make_ctx: MakeCtx, repo: Path, outside: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    home = outside / "home"
    home.mkdir()
    elsewhere = outside / "notes.txt"
    elsewhere.write_text("the user's\n")
    in_tmp = tmp_path / "also.txt"
    in_tmp.write_text("the user's\n")
    # A user's repository outside /tmp, too: the sandbox cannot hide it, only protect it.
    user_repo = shutil.copytree(repo, outside / "user-repo", symlinks=True)
    configure(user_repo)
    readme_before = (user_repo / "README.md").read_bytes()
    targets = [str(repo / "README.md"), str(user_repo / "README.md"), str(home / ".bashrc"),
               str(elsewhere), str(in_tmp), str(user_repo / ".git" / "hooks" / "pre-commit")]
    proposal = hostile(user_repo, f"""
        for path in {targets!r}:
            try:
                with open(path, "a") as f:
                    f.write("pwned\\n")
            except OSError as e:
                print("cannot write", path, e)
        # the worktree's .git link: rewritten, it would point the later git at other hooks
        try:
            with open(".git", "w") as f:
                f.write("gitdir: /tmp/evil\\n")
            escapes.append("rewrote .git")
        except OSError:
            pass
        with open("written-in-the-worktree.txt", "w") as f:
            f.write("fine\\n")
        with open(os.path.join(os.environ["TMPDIR"], "scratch"), "w") as f:
            f.write("fine\\n")
    """)
    monkeypatch.setenv("HOME", str(home))
    ctx = make_ctx(repo_path=user_repo)
    assert check_proposed_changes(ctx, proposal) == []
    assert (user_repo / "README.md").read_bytes() == readme_before
    assert (repo / "README.md").read_bytes() == readme_before
    assert not (home / ".bashrc").exists()
    assert elsewhere.read_text() == "the user's\n"
    assert in_tmp.read_text() == "the user's\n"
    assert not (user_repo / ".git" / "hooks" / "pre-commit").exists()
    assert run_git(user_repo, "status", "--porcelain") == ""


def test_git_works_read_only_without_the_repository_config(
    make_ctx: MakeCtx, repo: Path
) -> None:
    run_git(repo, "remote", "add", "origin",
            "https://x-access-token:ghs_configsecret@github.com/o/r.git")
    configure(repo)
    proposal = hostile(repo, """
        import subprocess
        out = subprocess.run(["git", "log", "--oneline", "-1"], capture_output=True, text=True)
        if out.returncode != 0:
            escapes.append("git log failed: " + out.stderr)
        config = subprocess.run(["git", "config", "--list"], capture_output=True, text=True)
        if "ghs_configsecret" in config.stdout:
            escapes.append("the remote URL's token is readable")
    """)
    problems, _record = review(make_ctx, proposal)
    assert problems == []


def test_a_process_storm_is_stopped_by_the_process_limit(make_ctx: MakeCtx, repo: Path) -> None:
    configure(repo, "process_limit = 24\n")
    proposal = hostile(repo, """
        import time
        children = []
        for _ in range(200):
            pid = os.fork()
            if pid == 0:
                time.sleep(30)
                os._exit(0)
            children.append(pid)
        escapes.append(f"forked {len(children)} processes")
    """)
    problems, record = review(make_ctx, proposal)
    assert len(problems) == 1
    assert "failed with exit code" in problems[0]
    assert problems[0].count("it hit the sandbox's process limit (24 processes)") == 1
    assert "ESCAPED" not in problems[0]
    assert record["validation"]["runs"][0]["limit"] == (
        "it hit the sandbox's process limit (24 processes)")


def test_a_fork_bomb_ends_at_the_timeout_with_nothing_left(
    make_ctx: MakeCtx, repo: Path
) -> None:
    marker = "mgtforkbombmarker"
    (repo / "mgt.toml").write_text(
        "[evolve]\nprocess_limit = 24\ntimeout = \"3s\"\n"
        f"must_pass = [\"{marker}() {{ {marker} | {marker} & }}; {marker}; sleep 60\"]\n"
    )
    run_git(repo, "commit", "-qam", "a fork bomb")
    proposal = proposed([add_change(repo, "x.txt", "x\n", CITE)])
    problems, _record = review(make_ctx, proposal)
    assert len(problems) == 1
    # ended by the timeout, or earlier when the shell itself could no longer fork
    assert "timed out after 3s" in problems[0] or (
        "it hit the sandbox's process limit (24 processes)" in problems[0])
    left = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                left.append(pid)
        except OSError:
            continue
    assert left == []


def test_a_memory_hog_is_stopped_by_the_memory_limit(make_ctx: MakeCtx, repo: Path) -> None:
    configure(repo, "memory_limit_mb = 200\n")
    proposal = hostile(repo, """
        hog = bytearray(1024 * 1024 * 1024)
        escapes.append(f"allocated {len(hog)} bytes")
    """)
    problems, record = review(make_ctx, proposal)
    assert len(problems) == 1
    assert "it hit the sandbox's memory limit (200 MiB)" in problems[0]
    assert "MemoryError" in problems[0]
    assert record["validation"]["runs"][0]["limit"] == (
        "it hit the sandbox's memory limit (200 MiB)")


def test_without_bubblewrap_must_pass_is_refused(
    make_ctx: MakeCtx, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(repo)
    proposal = hostile(repo, "")
    monkeypatch.setenv("MGT_BWRAP", "/nonexistent/bwrap")
    with pytest.raises(SandboxUnavailable) as caught:
        check_proposed_changes(make_ctx(), proposal)
    message = str(caught.value)
    assert message.startswith("no sandbox for must_pass (model-written code): ")
    assert "MGT_BWRAP=/nonexistent/bwrap is not an executable program" in message
    assert "apt-get install bubblewrap" in message
    assert message.endswith('or set [evolve] sandbox = "none" in the target\'s mgt.toml')
    assert preflight_problem(load_target_config(repo)) == message
    with pytest.raises(SandboxUnavailable):
        apply_diff(make_ctx({"changes": proposal}, state="apply"))
    # bwrap not on PATH at all
    monkeypatch.delenv("MGT_BWRAP")
    only_git = repo.parent / "only-git"
    only_git.mkdir()
    (only_git / "git").symlink_to(shutil.which("git") or "/usr/bin/git")
    monkeypatch.setenv("PATH", str(only_git))
    with pytest.raises(SandboxUnavailable, match=r"bubblewrap \(bwrap\) is not installed"):
        check_proposed_changes(make_ctx(), proposal)
    assert run_git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1


def test_a_bwrap_that_cannot_make_namespaces_is_refused(
    make_ctx: MakeCtx, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "bwrap"
    broken.write_text("#!/bin/sh\necho 'bwrap: No permissions to creating new namespace' >&2\n"
                      "exit 1\n")
    broken.chmod(0o755)
    configure(repo)
    monkeypatch.setenv("MGT_BWRAP", str(broken))
    with pytest.raises(SandboxUnavailable) as caught:
        check_proposed_changes(make_ctx(), hostile(repo, ""))
    message = str(caught.value)
    assert "bwrap cannot make a sandbox here: bwrap: No permissions to creating new namespace" \
        in message
    assert "allow user namespaces" in message
    assert '[evolve] sandbox = "none"' in message


def test_opting_out_runs_unsandboxed_and_says_so(
    make_ctx: MakeCtx, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(repo, 'sandbox = "none"\n')
    monkeypatch.setenv("MGT_BWRAP", "/nonexistent/bwrap")
    monkeypatch.setenv("GITHUB_TOKEN", SECRETS["GITHUB_TOKEN"])
    proposal = hostile(repo, """
        if "GITHUB_TOKEN" not in os.environ:
            escapes.append("expected the caller's environment without a sandbox")
    """)
    assert preflight_problem(load_target_config(repo)) is None
    problems, record = review(make_ctx, proposal)
    assert problems == []
    assert record["validation"]["sandbox"] == "none (opted out in mgt.toml)"
    assert record["validation"]["runs"][0]["sandbox"] == "none (opted out in mgt.toml)"


def test_open_pr_and_apply_diff_run_must_pass_sandboxed(
    make_ctx: MakeCtx, repo: Path, report: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(repo)
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    proposal = hostile(repo, f"""
        for name in {sorted(SECRETS)!r}:
            if name in os.environ:
                escapes.append("env " + name)
        # left in the worktree: never part of the commit, which is exactly the patch
        with open("left-behind.txt", "w") as f:
            f.write("junk\\n")
        gitdir = open(".git").read().split(":", 1)[1].strip()
        # the index: staging more files there would put them in the commit
        for path in (".git", os.path.join(gitdir, "index")):
            try:
                with open(path, "a") as f:
                    f.write("x")
                escapes.append("wrote " + path)
            except OSError:
                pass
    """)
    applied = apply_diff(make_ctx({"changes": proposal}, state="apply"))
    assert [r["sandbox"] for r in applied["validation"]["runs"]] == ["bubblewrap"]
    assert applied["validation"]["runs"][0]["ok"] is True
    result = open_pr(make_ctx({"changes": proposal, "evidence": report}, state="open_pr"))
    assert result["files_changed"] == ["probe.py"]
    assert run_git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1


def test_open_pr_refuses_without_a_sandbox_and_leaves_no_branch(
    make_ctx: MakeCtx, repo: Path, report: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(repo)
    proposal = hostile(repo, "")
    monkeypatch.setenv("MGT_BWRAP", "/nonexistent/bwrap")
    branches = run_git(repo, "branch", "--list")
    with pytest.raises(SandboxUnavailable):
        open_pr(make_ctx({"changes": proposal, "evidence": report}, state="open_pr"))
    assert run_git(repo, "branch", "--list") == branches
    assert not (repo / ".git" / "mgt" / "prs").exists()


def _cgroup_root() -> Path | None:
    """A pids cgroup root this process may make groups in (root, cgroups mounted writable)."""
    from mgt.evolve import sandbox

    if os.geteuid() != 0:
        return None
    for root in sandbox._CGROUP_ROOTS:
        try:
            made = Path(tempfile.mkdtemp(prefix="mgt-probe-", dir=root))
        except OSError:
            continue
        made.rmdir()
        return root
    return None


def test_empty_sandbox_cgroups_left_by_a_killed_mgt_are_swept(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import signal
    import subprocess

    from mgt.evolve import sandbox

    root = _cgroup_root()
    if root is None:
        pytest.skip("no writable pids cgroup here (not root, or cgroups mounted read-only)")
    monkeypatch.setattr(sandbox, "STALE_CGROUP_SECONDS", 0.0)
    stale = Path(tempfile.mkdtemp(prefix="mgt-sandbox-", dir=root))
    busy = Path(tempfile.mkdtemp(prefix="mgt-sandbox-", dir=root))
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        (busy / "cgroup.procs").write_text(str(sleeper.pid))
        removed = sandbox.sweep_cgroups(root)
        assert stale in removed and not stale.exists()
        assert busy.exists() and busy not in removed  # a sandbox at work is left alone
    finally:
        sleeper.send_signal(signal.SIGKILL)
        sleeper.wait()
        for _ in range(100):
            try:
                busy.rmdir()
                break
            except OSError:
                import time

                time.sleep(0.02)
    monkeypatch.setattr(sandbox, "STALE_CGROUP_SECONDS", 3600.0)
    fresh = Path(tempfile.mkdtemp(prefix="mgt-sandbox-", dir=root))
    try:
        assert fresh not in sandbox.sweep_cgroups(root)  # just made: maybe another mgt's
    finally:
        fresh.rmdir()
