"""A script of answers → a local Anthropic Messages-API server speaking the streamed SSE format.

The real Claude Code CLI talks to this server when `ANTHROPIC_BASE_URL` points
at it. Each `POST /v1/messages` takes the next answer from the script:

    {"text": "..."}                           a text block, stop_reason end_turn
    {"structured": {...}}                     a `StructuredOutput` tool call with that JSON
    {"tool": "Bash", "input": {...}}          any other tool call (stop_reason tool_use)
    {"status": 400, "message": "..."}         an HTTP error with Anthropic's error body
    {"hang": true}                            never answer (until the server stops)
    any of the above + {"delay": 1.5}         wait that many seconds first
    any of the above + {"usage": {...}}       override the reported token usage

When the script runs out, the server answers 400 "scripted server: no answer
left" so a test sees a clear failure rather than a retry loop. Every request
(method, path, headers, body) is logged in `server.requests`, and with
`--log FILE` as JSON lines, so tests can measure request sizes and assert that
feedback reached the prompt. Input tokens are estimated as body characters / 4
(the server has no tokenizer); the CLI reports what the server says.

As a program:

    python -m tests.fakes.messages_api --script answers.json [--port N] [--log FILE]

prints `http://127.0.0.1:PORT` on its first line of stdout and serves until killed.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

__all__ = ["LoggedRequest", "MessagesServer", "estimate_tokens"]

Answer = Mapping[str, Any]

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def estimate_tokens(chars: int) -> int:
    """Token estimate used for reported usage: characters / 4 (no tokenizer offline)."""
    return max(1, chars // 4)


@dataclass
class LoggedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None
    body_chars: int
    answer: dict[str, Any] | None = None
    at: float = field(default_factory=time.time)

    @property
    def system_text(self) -> str:
        """The system prompt as one string (the API accepts a string or a list of blocks)."""
        system = (self.body or {}).get("system")
        if isinstance(system, str):
            return system
        if isinstance(system, list):
            return "\n".join(b.get("text", "") for b in system if isinstance(b, dict))
        return ""

    @property
    def messages_text(self) -> str:
        """All message text (user and assistant, text blocks and tool results) as one string."""
        return "\n".join(_texts((self.body or {}).get("messages", [])))

    @property
    def first_user_text(self) -> str:
        """The text of the first user message (where Claude Code puts the `-p` prompt)."""
        for message in (self.body or {}).get("messages", []):
            if isinstance(message, dict) and message.get("role") == "user":
                return "\n".join(_texts([message]))
        return ""

    @property
    def tool_names(self) -> list[str]:
        tools = (self.body or {}).get("tools") or []
        return [t.get("name", "") for t in tools if isinstance(t, dict)]

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "method": self.method,
            "path": self.path,
            "headers": self.headers,
            "body_chars": self.body_chars,
            "body": self.body,
            "answer": self.answer,
        }


def _texts(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, list):
        for item in node:
            yield from _texts(item)
    elif isinstance(node, dict):
        if isinstance(node.get("text"), str):
            yield node["text"]
        if "content" in node:
            yield from _texts(node["content"])


class MessagesServer:
    """A scripted Messages-API server on 127.0.0.1 (port 0 = any free port); a context manager."""

    def __init__(
        self,
        script: Iterable[Answer] = (),
        *,
        port: int = 0,
        log_path: Path | None = None,
        model: str = "claude-haiku-4-5-20251001",
    ) -> None:
        self._answers: deque[dict[str, Any]] = deque(dict(a) for a in script)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.requests: list[LoggedRequest] = []
        self.log_path = log_path
        self.model = model
        handler = type("Handler", (_Handler,), {"server_state": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MessagesServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # releases hanging handlers
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> MessagesServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- script ------------------------------------------------------------------------------
    def push(self, *answers: Answer) -> None:
        with self._lock:
            self._answers.extend(dict(a) for a in answers)

    @property
    def remaining(self) -> int:
        with self._lock:
            return len(self._answers)

    @property
    def message_requests(self) -> list[LoggedRequest]:
        """Only the `POST /v1/messages` calls (the model calls), in order."""
        return [r for r in self.requests if r.method == "POST" and _is_messages(r.path)]

    def _next_answer(self) -> dict[str, Any]:
        with self._lock:
            if self._answers:
                return self._answers.popleft()
        return {"status": 400, "message": "scripted server: no answer left"}

    def _record(self, request: LoggedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _write_log(self, request: LoggedRequest) -> None:
        if self.log_path is None:
            return
        with self._lock, self.log_path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(request.to_json()) + "\n")


def _is_messages(path: str) -> bool:
    return path.split("?", 1)[0].rstrip("/") == "/v1/messages"


class _Handler(BaseHTTPRequestHandler):
    server_state: MessagesServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_HEAD(self) -> None:
        self.server_state._write_log(self._record(None, 0))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        self.server_state._write_log(self._record(None, 0))
        self._send_json(404, _error_body(404, f"scripted server: no GET {self.path}"))

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        logged = self._record(body if isinstance(body, dict) else None, len(raw))
        state = self.server_state
        if not _is_messages(self.path) or not isinstance(body, dict):
            state._write_log(logged)
            if not _is_messages(self.path):
                self._send_json(404, _error_body(404, f"scripted server: no POST {self.path}"))
            else:
                self._send_json(400, _error_body(400, "request body is not a JSON object"))
            return
        answer = state._next_answer()
        logged.answer = answer
        state._write_log(logged)
        if answer.get("delay"):
            state._stopping.wait(float(answer["delay"]))
        if answer.get("hang"):
            state._stopping.wait()
            self.close_connection = True
            return
        if "status" in answer:
            status = int(answer["status"])
            self._send_json(status, _error_body(status, str(answer.get("message", "error"))))
            return
        self._stream(body, answer, len(raw))

    # -- helpers --------------------------------------------------------------------------------
    def _record(self, body: dict[str, Any] | None, chars: int) -> LoggedRequest:
        logged = LoggedRequest(
            method=self.command,
            path=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            body_chars=chars,
        )
        self.server_state._record(logged)
        return logged

    def _send_json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("request-id", f"req_{uuid.uuid4().hex[:24]}")
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, body: dict[str, Any], answer: dict[str, Any], chars: int) -> None:
        model = str(body.get("model") or self.server_state.model)
        usage = {"input_tokens": estimate_tokens(chars), "output_tokens": 1}
        usage.update(answer.get("usage") or {})
        if "structured" in answer:
            name, tool_input = "StructuredOutput", answer["structured"]
        elif "tool" in answer:
            name, tool_input = str(answer["tool"]), answer.get("input", {})
        else:
            name, tool_input = None, None
        if name is not None:
            partial = json.dumps(tool_input)
            block: dict[str, Any] = {
                "type": "tool_use",
                "id": f"toolu_{uuid.uuid4().hex[:24]}",
                "name": name,
                "input": {},
            }
            delta = {"type": "input_json_delta", "partial_json": partial}
            stop_reason, out_chars = "tool_use", len(partial)
        else:
            text = str(answer.get("text", ""))
            block = {"type": "text", "text": ""}
            delta = {"type": "text_delta", "text": text}
            stop_reason, out_chars = "end_turn", len(text)
        output_tokens = int(
            answer.get("usage", {}).get("output_tokens", estimate_tokens(out_chars))
        )
        message: dict[str, Any] = {
            "id": f"msg_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage,
        }
        events: list[tuple[str, dict[str, Any]]] = [
            ("message_start", {"type": "message_start", "message": message}),
            (
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": block},
            ),
            ("ping", {"type": "ping"}),
            ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                    "usage": {"output_tokens": output_tokens},
                },
            ),
            ("message_stop", {"type": "message_stop"}),
        ]
        payload = b"".join(
            f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in events
        )
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("request-id", f"req_{uuid.uuid4().hex[:24]}")
        self.end_headers()
        self.wfile.write(payload)


def _error_body(status: int, message: str) -> dict[str, Any]:
    kind = ERROR_TYPES.get(status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


def load_script(path: Path) -> list[dict[str, Any]]:
    """A script file: a JSON array of answers, or JSON lines (one answer per line)."""
    text = path.read_text(encoding="utf-8")
    stripped = text.lstrip()
    if stripped.startswith("["):
        data = json.loads(text)
    else:
        data = [json.loads(line) for line in text.splitlines() if line.strip()]
    if not isinstance(data, list) or not all(isinstance(a, dict) for a in data):
        raise ValueError(f"{path}: a script is a JSON array of answer objects")
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.messages_api", description=__doc__)
    parser.add_argument("--script", type=Path, help="JSON array (or JSON lines) of answers")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--log", type=Path, help="append every request as a JSON line")
    args = parser.parse_args(argv)
    try:
        script = load_script(args.script) if args.script else []
    except (OSError, ValueError) as e:
        print(f"messages_api: {e}", file=sys.stderr)
        return 2
    server = MessagesServer(script, port=args.port, log_path=args.log)
    print(server.url, flush=True)
    try:
        server._httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server._stopping.set()
        server._httpd.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
