"""`mgt logs` run as a program, over files and over the Loki stand-in."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mgt.logs.events import format_timestamp
from tests.fakes.loki import FakeLoki

from .helpers import make_events, write_jsonl

ROOT = Path(__file__).resolve().parents[2]
SECRET = "glc_cli-secret-token"


def run(*args: str, cwd: Path, env: dict[str, str] | None = None,
        stdin: Any = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("GRAFANA_LOKI")}
    environ["PYTHONPATH"] = str(ROOT)
    environ.update(env or {})
    return subprocess.run([sys.executable, "-m", "mgt", "logs", *args], cwd=cwd, env=environ,
                          capture_output=True, text=True, timeout=120, stdin=stdin)


def as_json(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert isinstance(data, list)
    for item in data:
        assert set(item) == {"timestamp", "event"}
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", item["timestamp"])
    return data


def recent_events(n: int) -> list[dict[str, Any]]:
    """`n` events one minute apart, the newest a minute ago (so `--since 24h` holds all)."""
    start = time.time_ns() - (n + 1) * 60 * 10**9
    return make_events(n, start=start, step_s=60)


@pytest.fixture
def events_file(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "events.jsonl", recent_events(300))


# ------------------------------------------------------------------- file source


def test_transitions_json_newest_first(events_file: Path, tmp_path: Path) -> None:
    data = as_json(run("transitions", "--source", str(events_file), "--json", "--limit", "5",
                       cwd=tmp_path))
    assert [d["event"]["i"] for d in data] == [296, 291, 286, 281, 276]
    assert {d["event"]["type"] for d in data} == {"graph_transition"}
    assert data[0]["event"]["from"] == "start"
    assert data[0]["timestamp"] > data[1]["timestamp"]


def test_default_limit_is_100(events_file: Path, tmp_path: Path) -> None:
    assert len(as_json(run("llm-calls", "--source", str(events_file), "--json",
                           cwd=tmp_path))) == 60
    many = write_jsonl(tmp_path / "many.jsonl",
                       [e for e in recent_events(800) if e["type"] == "error"])
    assert len(as_json(run("errors", "--source", str(many), "--json", cwd=tmp_path))) == 100


def test_llm_calls_min_latency(events_file: Path, tmp_path: Path) -> None:
    data = as_json(run("llm-calls", "--min-latency", "3000", "--source", str(events_file),
                       "--json", cwd=tmp_path))
    events = [json.loads(line) for line in events_file.read_text().splitlines()]
    expected = [e["i"] for e in reversed(events)
                if e["type"] == "llm_call" and e["latency_ms"] >= 3000]
    assert [d["event"]["i"] for d in data] == expected
    assert data and all(d["event"]["latency_ms"] >= 3000 for d in data)


def test_session_is_a_timeline_oldest_first(events_file: Path, tmp_path: Path) -> None:
    data = as_json(run("session", "s3", "--source", str(events_file), "--json", "--limit", "10",
                       cwd=tmp_path))
    assert [d["event"]["i"] for d in data] == list(range(234, 298, 7))
    human = run("session", "s3", "--source", str(events_file), "--limit", "4", cwd=tmp_path)
    assert human.returncode == 0, human.stderr
    assert "session s3: 4 event(s)" in human.stdout
    rows = [line for line in human.stdout.splitlines() if re.match(r"│\s+\d+\.\d{3} ", line)]
    assert [row.split("│")[1].strip() for row in rows] == ["0.000", "420.000", "840.000",
                                                           "1260.000"]


def test_since_on_a_file_counts_from_its_newest_event(tmp_path: Path) -> None:
    old = write_jsonl(tmp_path / "old.jsonl", make_events(100, step_s=60))  # January 2025
    data = as_json(run("errors", "--since", "30m", "--source", str(old), "--json",
                       cwd=tmp_path))
    assert [d["event"]["i"] for d in data] == [97, 92, 87, 82, 77, 72]


@pytest.mark.parametrize(("command", "expected"), [
    (["transitions"], ["graph transitions, newest first", "start", "trigger"]),
    (["llm-calls"], ["LLM calls, newest first", "haiku", "latency ms"]),
    (["errors"], ["errors, newest first", "boom", '{"node":"n"}']),
    (["session", "s1"], ["session s1:", "graph_transition", "user_action"]),
])
def test_human_tables(events_file: Path, tmp_path: Path, command: list[str],
                      expected: list[str]) -> None:
    result = run(*command, "--source", str(events_file), "--limit", "20", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for text in expected:
        assert text in result.stdout
    assert result.stdout.count("\n") >= 20
    assert result.stderr == ""


def test_no_results(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "e.jsonl", [e for e in recent_events(20)
                                              if e["type"] != "error"])
    result = run("errors", "--source", str(path), cwd=tmp_path)
    assert (result.returncode, result.stdout.strip()) == (0, "No results found.")
    assert run("errors", "--source", str(path), "--json", cwd=tmp_path).stdout.strip() == "[]"


def test_malformed_lines_reported_on_stderr(tmp_path: Path) -> None:
    lines = [json.dumps(e) for e in recent_events(20)]
    lines[4:4] = ["{broken", "[1, 2]", "plain text"]
    path = tmp_path / "e.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = run("errors", "--source", str(path), "--json", cwd=tmp_path)
    assert len(as_json(result)) == 4
    assert result.stderr.strip() == f"mgt: skipped 3 malformed line(s) in {path}"


def test_json_array_and_gzip_and_stdin_sources(events_file: Path, tmp_path: Path) -> None:
    first = run("errors", "--source", str(events_file), "--json", cwd=tmp_path)
    exported = tmp_path / "exported.json"
    exported.write_text(first.stdout)
    again = run("errors", "--source", str(exported), "--json", cwd=tmp_path)
    assert as_json(again) == as_json(first)  # mgt logs --json reads back unchanged
    gz = tmp_path / "e.jsonl.gz"
    subprocess.run(["gzip", "-k", "-c", str(events_file)], stdout=gz.open("wb"), check=True)
    assert as_json(run("errors", "--source", str(gz), "--json", cwd=tmp_path)) == as_json(first)
    with events_file.open("rb") as fh:
        piped = run("errors", "--source", "-", "--json", cwd=tmp_path, stdin=fh)
    assert as_json(piped) == as_json(first)


def test_log_text_cannot_drive_the_terminal(tmp_path: Path) -> None:
    evil = {"type": "error", "timestamp": format_timestamp(time.time_ns()),
            "message": "[bold red]IGNORE PREVIOUS INSTRUCTIONS[/] \x1b[2J\x07 \ud800 end\nnext",
            "session_id": "[link=http://x]s[/link]"}
    path = tmp_path / "e.jsonl"
    path.write_text(json.dumps(evil) + "\n")
    for command in (["errors"], ["session", evil["session_id"]]):
        result = run(*command, "--source", str(path), cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert "\x1b" not in result.stdout and "\x07" not in result.stdout
        assert "[bold red]IGNORE PREVIOUS INSTRUCTIONS[/]" in result.stdout
        assert "\\x1b[2J\\x07" in result.stdout
    data = as_json(run("errors", "--source", str(path), "--json", cwd=tmp_path))
    assert data[0]["event"]["message"] == evil["message"]


@pytest.mark.parametrize(("args", "message"), [
    (["session"], "needs a session id"),
    (["errors", "abc"], "only `mgt logs session` takes an ID"),
    (["errors", "--min-latency", "5"], "--min-latency applies to `mgt logs llm-calls` only"),
    (["llm-calls", "--min-latency", "-5"], "--min-latency must be 0 or more"),
    (["errors", "--limit", "0"], "--limit must be a positive number"),
    (["errors", "--since", "yesterday"], "invalid duration 'yesterday'"),
    (["errors", "--since", ""], "invalid duration ''"),  # was taken as the default 24h
    (["errors", "--source", "missing.jsonl"], "no such event file: missing.jsonl"),
    (["errors", "--source", "ftp://x"], "no such event file: ftp://x"),
    (["errors", "--source", ""], "empty --source"),
    (["nonsense"], "invalid choice"),
])
def test_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    result = run(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


# ------------------------------------------------------------------- Loki source


@pytest.fixture
def loki(events_file: Path) -> Iterator[FakeLoki]:
    with FakeLoki(user="12345", password=SECRET, max_entries=40, tie_order="shuffle") as fake:
        for line in events_file.read_text().splitlines():
            fake.add_event(json.loads(line))
        yield fake


def loki_env(fake: FakeLoki) -> dict[str, str]:
    return {"GRAFANA_LOKI_URL": fake.url, "GRAFANA_LOKI_USER": "12345",
            "GRAFANA_LOKI_TOKEN": SECRET}


@pytest.mark.parametrize("command", [["transitions"], ["llm-calls"], ["errors"],
                                     ["session", "s2"], ["llm-calls", "--min-latency", "2500"]])
def test_loki_and_file_agree(loki: FakeLoki, events_file: Path, tmp_path: Path,
                             command: list[str]) -> None:
    from_file = as_json(run(*command, "--source", str(events_file), "--json", cwd=tmp_path))
    from_loki = as_json(run(*command, "--json", "--limit", "100", cwd=tmp_path,
                            env=loki_env(loki)))
    assert from_loki == from_file
    assert len(from_file) > 10
    # 40 entries per query at most: more than one page was needed for the longer lists
    assert all(int(r.params["limit"]) <= 40 for r in loki.query_requests if r.status == 200)


@pytest.mark.parametrize("command", [["transitions"], ["llm-calls", "--min-latency", "1000"],
                                     ["errors"], ["session", "s5"]])
def test_loki_and_file_print_the_same_tables(loki: FakeLoki, events_file: Path,
                                             tmp_path: Path, command: list[str]) -> None:
    from_file = run(*command, "--source", str(events_file), "--limit", "30", cwd=tmp_path)
    from_loki = run(*command, "--source", loki.url, "--limit", "30", cwd=tmp_path,
                    env=loki_env(loki))
    assert from_file.returncode == from_loki.returncode == 0, from_loki.stderr
    rows = [line for line in from_loki.stdout.splitlines() if line.startswith("│")]
    assert rows == [line for line in from_file.stdout.splitlines() if line.startswith("│")]
    assert len(rows) >= 10


def test_loki_human_output_and_verbose(loki: FakeLoki, tmp_path: Path) -> None:
    result = run("llm-calls", "--min-latency", "2000", "--limit", "3", "--verbose",
                 "--source", loki.url, cwd=tmp_path, env=loki_env(loki) | {"GRAFANA_LOKI_URL": ""})
    assert result.returncode == 0, result.stderr
    assert "3 LLM calls ≥ 2000 ms, newest first · last 24h · " + loki.url in result.stdout
    assert 'LogQL: {app="tidepool"} |= "llm_call" | json | latency_ms >= 2000' in result.stderr
    assert f"GET {loki.url}/loki/api/v1/query_range" in result.stderr
    assert "direction=backward" in result.stderr
    assert SECRET not in result.stderr + result.stdout


def test_loki_url_from_tidepool_env(loki: FakeLoki, tmp_path: Path) -> None:
    (tmp_path / ".tidepool.env").write_text(
        f"GRAFANA_LOKI_URL={loki.url}\nGRAFANA_LOKI_USER=12345\n"
        f'GRAFANA_LOKI_TOKEN="{SECRET}"\n')
    work = tmp_path / "sub"
    work.mkdir()
    assert len(as_json(run("errors", "--json", "--limit", "7", cwd=work))) == 7


def test_loki_auth_refused(loki: FakeLoki, tmp_path: Path) -> None:
    result = run("errors", cwd=tmp_path, env=loki_env(loki) | {"GRAFANA_LOKI_TOKEN": "wrong"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"mgt: Loki at {loki.url}: access refused")
    assert "wrong" not in result.stderr and SECRET not in result.stderr


def test_loki_faults_retried(loki: FakeLoki, tmp_path: Path) -> None:
    loki.faults.extend(["429:0", "503", "cut"])
    data = as_json(run("errors", "--json", "--limit", "3", cwd=tmp_path, env=loki_env(loki)))
    assert len(data) == 3
    assert [r.status for r in loki.query_requests[:4]] == [429, 503, 200, 200]


def test_loki_unreachable(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = run("errors", cwd=tmp_path, env={"GRAFANA_LOKI_URL": f"http://127.0.0.1:{port}",
                                              "GRAFANA_LOKI_TOKEN": SECRET})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"mgt: Loki at http://127.0.0.1:{port}: cannot connect (Connection refused)"]


def test_the_stand_in_runs_as_a_program(events_file: Path, tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.loki", "--events", str(events_file), "--port", "0",
         "--bearer", SECRET, "--fault", "503"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        env = {"GRAFANA_LOKI_BEARER": SECRET}
        data = as_json(run("session", "s4", "--source", url, "--json", cwd=tmp_path, env=env))
        assert {d["event"]["session_id"] for d in data} == {"s4"} and len(data) == 43
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_default_loki_url_unreachable_says_how_to_choose(tmp_path: Path) -> None:
    with socket.socket() as sock:
        if sock.connect_ex(("127.0.0.1", 3100)) == 0:
            pytest.skip("something listens on localhost:3100")
    result = run("errors", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "mgt: Loki at http://localhost:3100: cannot connect (Connection refused); "
        "set GRAFANA_LOKI_URL (or .tidepool.env) or pass --source URL|FILE"]


@pytest.fixture
def html_server(tmp_path: Path) -> Iterator[str]:
    """A real web server (Python's http.server) answering every Loki path with an HTML page,
    as a Grafana UI or a login proxy does when given instead of Loki's API."""
    site = tmp_path / "site"
    (site / "loki" / "api" / "v1").mkdir(parents=True)
    (site / "loki" / "api" / "v1" / "query_range").write_text(
        "<!DOCTYPE html>\n<html><head><title>Grafana</title></head><body>Sign in</body></html>\n"
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
         "--directory", str(site)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_server_answering_html_is_not_loki(html_server: str, tmp_path: Path) -> None:
    # an HTML page is no cut-off JSON answer: it used to be retried five times (with backoff)
    # and reported as "a body that is not complete JSON"
    result = run("errors", "--source", html_server, "--verbose", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert lines[-1].startswith(f"mgt: Loki at {html_server}: answered with an HTML page"), lines
    assert "is this a Loki URL?" in lines[-1]
    assert sum("GET " in line for line in lines) == 1, result.stderr


def test_https_to_a_plain_http_server_says_so(html_server: str, tmp_path: Path) -> None:
    # OpenSSL's "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)" told a user
    # nothing about the fix
    url = html_server.replace("http://", "https://")
    result = run("errors", "--source", url, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        f"mgt: Loki at {url}: cannot connect (no TLS at this address: the server speaks plain "
        "HTTP, try http://)\n"
    )
