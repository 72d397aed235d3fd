"""The scripted Messages-API server itself: SSE wire format, errors, logging, program mode."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.messages_api import MessagesServer

ROOT = Path(__file__).resolve().parents[2]
BODY = {
    "model": "claude-haiku-4-5",
    "system": [{"type": "text", "text": "SYS"}],
    "messages": [{"role": "user", "content": "hello"}],
    "max_tokens": 100,
    "stream": True,
}


def events(text: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for chunk in text.strip().split("\n\n"):
        name_line, data_line = chunk.split("\n")
        assert name_line.startswith("event: ") and data_line.startswith("data: ")
        out.append((name_line[7:], json.loads(data_line[6:])))
    return out


def post(server: MessagesServer, body: object = BODY) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/messages?beta=true",
        content=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
        timeout=10,
    )


def test_head_is_answered() -> None:
    with MessagesServer() as server:
        assert httpx.head(server.url + "/", timeout=5).status_code == 200
        assert [r.method for r in server.requests] == ["HEAD"]


def test_text_answer_is_a_streamed_message() -> None:
    with MessagesServer([{"text": "hi there"}]) as server:
        response = post(server)
    assert response.headers["content-type"] == "text/event-stream"
    evs = events(response.text)
    assert [name for name, _ in evs if name != "ping"] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start = evs[0][1]["message"]
    assert start["role"] == "assistant" and start["model"] == "claude-haiku-4-5"
    assert start["usage"]["input_tokens"] == server.requests[0].body_chars // 4
    assert evs[1][1]["content_block"] == {"type": "text", "text": ""}
    assert evs[3][1]["delta"] == {"type": "text_delta", "text": "hi there"}
    assert evs[5][1]["delta"]["stop_reason"] == "end_turn"


def test_structured_answer_is_a_tool_call() -> None:
    with MessagesServer([{"structured": {"a": [1, 2]}, "usage": {"input_tokens": 42}}]) as server:
        evs = events(post(server).text)
    block = evs[1][1]["content_block"]
    assert block["type"] == "tool_use" and block["name"] == "StructuredOutput"
    delta = evs[3][1]["delta"]
    assert delta["type"] == "input_json_delta"
    assert json.loads(delta["partial_json"]) == {"a": [1, 2]}
    assert evs[0][1]["message"]["usage"]["input_tokens"] == 42
    assert evs[5][1]["delta"]["stop_reason"] == "tool_use"


def test_error_status_and_exhausted_script() -> None:
    with MessagesServer([{"status": 429, "message": "slow down"}]) as server:
        first, second = post(server), post(server)
    assert first.status_code == 429
    assert first.json() == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "slow down"},
    }
    assert second.status_code == 400
    assert "no answer left" in second.json()["error"]["message"]


def test_requests_are_logged_with_their_text(tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    with MessagesServer([{"text": "x"}], log_path=log) as server:
        post(server)
        logged = server.message_requests[0]
    assert logged.system_text == "SYS"
    assert logged.first_user_text == "hello"
    assert logged.body_chars == len(json.dumps(BODY).encode())
    line = json.loads(log.read_text())
    assert line["body"]["messages"][0]["content"] == "hello"
    assert line["answer"] == {"text": "x"}


def test_garbage_body_is_a_400_not_a_crash() -> None:
    with MessagesServer([{"text": "unused"}]) as server:
        response = httpx.post(
            f"{server.url}/v1/messages", content=b"{nope", timeout=5,
            headers={"content-type": "application/json"},
        )  # fmt: skip
        assert response.status_code == 400
        assert server.remaining == 1  # a bad request does not consume the script
        assert httpx.get(f"{server.url}/v1/models", timeout=5).status_code == 404


def test_hang_is_released_when_the_server_stops() -> None:
    server = MessagesServer([{"hang": True}]).start()
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{server.url}/v1/messages", json=BODY, timeout=0.5)
    assert len(server.message_requests) == 1
    server.stop()  # must not block on the hanging handler


def test_runs_as_a_program(tmp_path: Path) -> None:
    script = tmp_path / "script.json"
    script.write_text(json.dumps([{"text": "from a file"}]))
    log = tmp_path / "log.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.messages_api", "--script", str(script),
         "--log", str(log)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        response = httpx.post(f"{url}/v1/messages", json=BODY, timeout=10)
        assert events(response.text)[3][1]["delta"]["text"] == "from a file"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert json.loads(log.read_text())["answer"] == {"text": "from a file"}


def test_program_rejects_a_bad_script(tmp_path: Path) -> None:
    script = tmp_path / "script.json"
    script.write_text('{"not": "a list"}\n[')
    proc = subprocess.run(
        [sys.executable, "-m", "tests.fakes.messages_api", "--script", str(script)],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "messages_api:" in proc.stderr
