"""Stored log entries → a local Loki server answering `GET /loki/api/v1/query_range` like Loki.

What it speaks, as Loki does:
- `query`, `start`, `end` (ns integers, float seconds or RFC 3339; end exclusive),
  `limit` (default 100), `direction` (`backward` default, or `forward`);
- the answer `{"status": "success", "data": {"resultType": "streams", "result":
  [{"stream": {labels}, "values": [["<ns>", "<line>"], ...]}], "stats": {...}}}`,
  entries grouped by their full label set (after `| json`, extracted fields are
  labels, so one stored stream fans out into many, as in Loki);
- a per-query entry cap: a `limit` above `max_entries` is a 400 with Loki's text
  `max entries limit per query exceeded, limit > max_entries_limit_per_query (N > M)`;
- LogQL enough for mgt: a label selector (`=`, `!=`, `=~`, `!~`), line filters
  (`|=`, `!=`, `|~`, `!~`, double-quoted or backtick strings), `| json`
  (nested keys joined by `_`, a clash with a stream label becomes `<name>_extracted`,
  a non-JSON line gets `__error__="JSONParserErr"`) and label filters
  (`| name op value`, op in `= == != =~ !~ > >= < <=`; numeric when the value is a
  number, and as in Loki a value that is not a number keeps the line and adds
  `__error__="LabelFilterErr"`). Anything else is a 400 `parse error ...`;
- auth: Basic (`user`/`password`), bearer, and `X-Scope-OrgID` (`org_id`), each
  checked when configured; a miss is a 401 (`no org id` for a missing tenant).

Injectable faults, consumed one per query_range request in order
(`server.faults.append(...)` or `--fault` on the command line):

    "429"  "429:3"  "429:date"   429 with Retry-After (seconds, or an HTTP date ~1s ahead)
    "500"  "502"  "503"  "504"   that status with a short body
    "slow:2.5"                    wait that many seconds, then answer normally
    "cut"                         send headers and half the body, then close the connection
    "garbage"                     200 with a body that is not JSON

`tie_order="shuffle"` answers entries that share a timestamp in a random order
on each request (Loki promises no order among them). Every request is recorded
in `server.requests` (path, params, headers).

As a program:

    python -m tests.fakes.loki --events FILE [--port N] [--max-entries N]
        [--user U --password P] [--bearer T] [--org-id O] [--fault SPEC ...]

loads a file of event JSON lines or a `[{"timestamp", "event"}]` array (each
event stored as one line with labels `app="tidepool"` and `level`), prints
`http://127.0.0.1:PORT` on its first line of stdout and serves until killed.
"""

from __future__ import annotations

import argparse
import base64
import email.utils
import json
import random
import re
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["FakeLoki", "LogQLError", "RecordedRequest", "StoredEntry", "load_events"]

NS = 1_000_000_000


@dataclass(frozen=True)
class StoredEntry:
    ts: int
    line: str
    labels: Mapping[str, str]
    seq: int = 0


@dataclass
class RecordedRequest:
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    status: int = 0


class LogQLError(ValueError):
    """A query outside the supported LogQL subset or malformed (a 400 `parse error`)."""


# --------------------------------------------------------------------------- LogQL

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*"|`[^`]*`)
      | (?P<op>\|=|\|~|!=|!~|=~|==|>=|<=|=|>|<|\||\{|\}|,)
      | (?P<number>-?\d+(?:\.\d+)?(?:ms|s|m|h)?)
      | (?P<ident>[A-Za-z_][A-Za-z0-9_.]*)
    )""",
    re.VERBOSE,
)


def _tokens(query: str) -> list[tuple[str, str, int]]:
    out: list[tuple[str, str, int]] = []
    pos = 0
    while pos < len(query):
        if query[pos:].strip() == "":
            break
        m = _TOKEN.match(query, pos)
        if m is None or m.end() == pos:
            col = len(query[:pos]) + 1 + (len(query[pos:]) - len(query[pos:].lstrip()))
            raise LogQLError(f"parse error at line 1, col {col}: syntax error: unexpected input")
        kind = m.lastgroup or ""
        text = m.group(kind)
        out.append((kind, text, m.start(kind) + 1))
        pos = m.end()
    return out


def _unquote(text: str) -> str:
    if text.startswith("`"):
        return text[1:-1]
    return str(json.loads(text))


Matcher = Callable[[Mapping[str, str]], bool]


@dataclass
class Query:
    selector: list[tuple[str, str, str]] = field(default_factory=list)
    stages: list[tuple[str, Any]] = field(default_factory=list)


def parse_logql(query: str) -> Query:
    """The LogQL subset → a Query; LogQLError with Loki's wording otherwise."""
    toks = _tokens(query)
    i = 0

    def expect(kind: str, text: str | None = None) -> tuple[str, str, int]:
        nonlocal i
        if i >= len(toks):
            raise LogQLError(
                f"parse error at line 1, col {len(query) + 1}: syntax error: unexpected $end"
            )
        tok = toks[i]
        if tok[0] != kind or (text is not None and tok[1] != text):
            raise LogQLError(
                f"parse error at line 1, col {tok[2]}: syntax error: unexpected {tok[1]}"
            )
        i += 1
        return tok

    q = Query()
    expect("op", "{")
    while True:
        name = expect("ident")[1]
        op = expect("op")[1]
        if op not in ("=", "!=", "=~", "!~"):
            raise LogQLError(f"parse error at line 1, col {toks[i - 1][2]}: syntax error: "
                             f"unexpected {op}")
        value = _unquote(expect("string")[1])
        q.selector.append((name, op, value))
        if i < len(toks) and toks[i][1] == ",":
            i += 1
            continue
        expect("op", "}")
        break
    if not any(op in ("=", "=~") and value for _, op, value in q.selector):
        raise LogQLError("parse error : queries require at least one regexp or equality "
                         "matcher that does not have an empty-compatible value")
    while i < len(toks):
        _, text, col = toks[i]
        if text in ("|=", "!=", "|~", "!~"):
            i += 1
            needle = _unquote(expect("string")[1])
            if text in ("|~", "!~"):
                try:
                    re.compile(needle)
                except re.error as err:
                    raise LogQLError(f"parse error at line 1, col {col}: invalid regexp: {err}")\
                        from None
            q.stages.append(("line", (text, needle)))
        elif text == "|":
            i += 1
            nxt = expect("ident")
            if nxt[1] == "json" and (i >= len(toks) or toks[i][0] == "op"):
                q.stages.append(("json", None))
                continue
            name = nxt[1]
            op = expect("op")[1]
            if op not in ("=", "==", "!=", "=~", "!~", ">", ">=", "<", "<="):
                raise LogQLError(f"parse error at line 1, col {toks[i - 1][2]}: syntax error: "
                                 f"unexpected {op}")
            if i < len(toks) and toks[i][0] == "number":
                raw = toks[i][1]
                i += 1
                if not re.fullmatch(r"-?\d+(?:\.\d+)?", raw):
                    raise LogQLError(f"parse error: durations are not supported here: {raw}")
                q.stages.append(("label", (name, op, float(raw))))
            else:
                value = _unquote(expect("string")[1])
                if op in (">", ">=", "<", "<="):
                    raise LogQLError(f"parse error at line 1, col {col}: syntax error: "
                                     "string comparison needs = or !=")
                q.stages.append(("label", (name, op, value)))
        else:
            raise LogQLError(f"parse error at line 1, col {col}: syntax error: unexpected {text}")
    return q


def _label_ok(labels: Mapping[str, str], name: str, op: str, value: str) -> bool:
    actual = labels.get(name, "")
    if op in ("=", "=="):
        return actual == value
    if op == "!=":
        return actual != value
    matched = re.fullmatch(value, actual) is not None
    return matched if op == "=~" else not matched


def _flatten(obj: Any, prefix: str, out: dict[str, str]) -> None:
    for key, value in obj.items():
        name = re.sub(r"[^A-Za-z0-9_]", "_", f"{prefix}{key}")
        if isinstance(value, dict):
            _flatten(value, name + "_", out)
        elif isinstance(value, list):
            continue
        elif value is None:
            out[name] = ""
        elif isinstance(value, bool):
            out[name] = "true" if value else "false"
        elif isinstance(value, str):
            out[name] = value
        else:
            out[name] = json.dumps(value)


def run_pipeline(q: Query, line: str, stream: Mapping[str, str]) -> dict[str, str] | None:
    """The labels of an entry after the pipeline, or None when a stage drops it."""
    labels = dict(stream)
    for kind, arg in q.stages:
        if kind == "line":
            op, needle = arg
            if op == "|=" and needle not in line:
                return None
            if op == "!=" and needle in line:
                return None
            if op == "|~" and re.search(needle, line) is None:
                return None
            if op == "!~" and re.search(needle, line) is not None:
                return None
        elif kind == "json":
            try:
                obj = json.loads(line)
            except ValueError:
                obj = None
            if not isinstance(obj, dict):
                labels["__error__"] = "JSONParserErr"
                continue
            extracted: dict[str, str] = {}
            _flatten(obj, "", extracted)
            for name, value in extracted.items():
                labels[f"{name}_extracted" if name in stream else name] = value
        else:
            name, op, value = arg
            if isinstance(value, float):
                try:
                    actual = float(labels[name])
                except (KeyError, ValueError):
                    labels["__error__"] = "LabelFilterErr"
                    continue
                ok = {
                    "=": actual == value, "==": actual == value, "!=": actual != value,
                    ">": actual > value, ">=": actual >= value,
                    "<": actual < value, "<=": actual <= value,
                }.get(op, False)
                if not ok:
                    return None
            elif not _label_ok(labels, name, op, value):
                return None
    return labels


def _parse_time(text: str) -> int:
    text = text.strip()
    if re.fullmatch(r"\d+", text):
        return int(text)
    if re.fullmatch(r"\d+\.\d*", text):
        seconds, _, frac = text.partition(".")
        return int(seconds) * NS + int((frac + "000000000")[:9])
    return _iso_ns(text)


def _iso_ns(text: str) -> int:
    m = re.fullmatch(r"(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)?", text.strip())
    if m is None:
        raise ValueError(f"cannot parse {text!r} to a valid timestamp")
    dt = datetime.fromisoformat(m.group(1) + (m.group(3) or "Z").replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    nanos = int(((m.group(2) or "") + "000000000")[:9])
    return int(dt.timestamp()) * NS + nanos


# -------------------------------------------------------------------------- server


class FakeLoki:
    """A Loki stand-in on 127.0.0.1; use as a context manager or call start()/stop()."""

    def __init__(
        self,
        entries: Iterable[tuple[int, str, Mapping[str, str]]] = (),
        *,
        max_entries: int = 5000,
        user: str | None = None,
        password: str | None = None,
        bearer: str | None = None,
        org_id: str | None = None,
        tie_order: str = "stored",
        port: int = 0,
        seed: int = 0,
    ) -> None:
        self.entries: list[StoredEntry] = []
        self.max_entries = max_entries
        self.user, self.password, self.bearer, self.org_id = user, password, bearer, org_id
        self.tie_order = tie_order
        self.faults: deque[str] = deque()
        self.requests: list[RecordedRequest] = []
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        for ts, line, labels in entries:
            self.add(ts, line, labels)
        self._server = _QuietServer(("127.0.0.1", port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- data

    def add(self, ts: int, line: str, labels: Mapping[str, str] | None = None) -> None:
        self.entries.append(
            StoredEntry(ts, line, dict(labels or {"app": "tidepool"}), len(self.entries))
        )

    def add_event(self, event: Mapping[str, Any], ts: int | None = None) -> None:
        """Store an event object as one line, labelled like tidepool's events."""
        if ts is None:
            ts = _event_ns(event.get("timestamp"))
        level = "error" if event.get("type") == "error" else "info"
        self.add(ts, json.dumps(event, separators=(",", ":")),
                 {"app": "tidepool", "level": level})

    # -- lifecycle

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeLoki:
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeLoki:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def query_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/query_range")]

    # -- answering

    def check_auth(self, headers: Mapping[str, str]) -> str | None:
        given = headers.get("authorization", "")
        if self.user is not None:
            expected = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            if given != f"Basic {expected}":
                return "unauthorized"
        if self.bearer is not None and given != f"Bearer {self.bearer}":
            return "unauthorized"
        if self.org_id is not None and headers.get("x-scope-orgid") != self.org_id:
            return "no org id"
        return None

    def query_range(self, params: Mapping[str, str]) -> tuple[int, Any]:
        """(status, JSON body or error text) for a query_range request."""
        query = params.get("query")
        if not query:
            return 400, "query parameter is required"
        try:
            now = time.time_ns()
            end = _parse_time(params["end"]) if "end" in params else now
            start = _parse_time(params["start"]) if "start" in params else end - 3600 * NS
        except ValueError as err:
            return 400, str(err)
        try:
            limit = int(params.get("limit", "100"))
        except ValueError:
            return 400, f"strconv.Atoi: parsing {params.get('limit')!r}: invalid syntax"
        direction = params.get("direction", "backward").lower()
        if direction not in ("backward", "forward"):
            return 400, f"invalid direction '{params.get('direction')}'"
        if limit <= 0:
            return 400, "limit must be a positive value"
        if limit > self.max_entries:
            return 400, ("max entries limit per query exceeded, limit > "
                         f"max_entries_limit_per_query ({limit} > {self.max_entries})")
        if end <= start:
            return 400, "end timestamp must not be before or equal to start time"
        try:
            q = parse_logql(query)
        except LogQLError as err:
            return 400, str(err)

        matched: list[tuple[StoredEntry, dict[str, str]]] = []
        with self._lock:
            entries = list(self.entries)
        for entry in entries:
            if not (start <= entry.ts < end):
                continue
            if not all(_label_ok(entry.labels, n, op, v) for n, op, v in q.selector):
                continue
            labels = run_pipeline(q, entry.line, entry.labels)
            if labels is not None:
                matched.append((entry, labels))
        if self.tie_order == "shuffle":
            tiebreak = {id(e): self._rng.random() for e, _ in matched}
            matched.sort(key=lambda p: (p[0].ts, tiebreak[id(p[0])]))
        else:
            matched.sort(key=lambda p: (p[0].ts, p[0].seq))
        if direction == "backward":
            matched.reverse()
        chosen = matched[:limit]

        streams: dict[tuple[tuple[str, str], ...], list[list[str]]] = {}
        for entry, labels in chosen:
            key = tuple(sorted(labels.items()))
            streams.setdefault(key, []).append([str(entry.ts), entry.line])
        result = [{"stream": dict(k), "values": v} for k, v in streams.items()]
        body = {
            "status": "success",
            "data": {
                "resultType": "streams",
                "result": result,
                "stats": {"summary": {"totalEntriesReturned": len(chosen)}},
            },
        }
        return 200, body


class _QuietServer(ThreadingHTTPServer):
    """Clients that hang up early (timeouts, cut answers) are normal here, not errors."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if not isinstance(error, ConnectionError | TimeoutError):
            super().handle_error(request, client_address)


def _handler_for(fake: FakeLoki) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "fake-loki/1"

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in separate writes; without NODELAY, Nagle and
            # delayed ACKs stall every keep-alive answer by ~40 ms.
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, body: bytes, ctype: str = "text/plain; charset=utf-8",
                  extra: Mapping[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            params = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
            record = RecordedRequest(parts.path, params, {k.lower(): v for k, v in
                                                          self.headers.items()})
            fake.requests.append(record)
            if parts.path == "/ready":
                record.status = 200
                self._send(200, b"ready\n")
                return
            if parts.path != "/loki/api/v1/query_range":
                record.status = 404
                self._send(404, b"404 page not found\n")
                return
            denied = fake.check_auth(record.headers)
            if denied is not None:
                record.status = 401
                self._send(401, (denied + "\n").encode())
                return
            fault = fake.faults.popleft() if fake.faults else None
            if fault is not None and self._fault(fault, record):
                return
            status, body = fake.query_range(params)
            record.status = status
            if status != 200:
                self._send(status, (str(body) + "\n").encode())
                return
            self._send(200, json.dumps(body).encode(), "application/json")

        def _fault(self, fault: str, record: RecordedRequest) -> bool:
            """Apply a fault; True when it answered the request itself."""
            kind, _, arg = fault.partition(":")
            if kind == "slow":
                time.sleep(float(arg or "1"))
                return False
            if kind == "429":
                if arg == "date":
                    when = email.utils.formatdate(time.time() + 1.5, usegmt=True)
                else:
                    when = arg or "1"
                record.status = 429
                self._send(429, b"Too Many Requests\n", extra={"Retry-After": when})
                return True
            if kind.isdigit():
                record.status = int(kind)
                self._send(int(kind), f"fake fault {kind}\n".encode())
                return True
            if kind == "cut":
                _, body = fake.query_range(record.params)
                data = json.dumps(body).encode()
                record.status = 200
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data) + 100))
                self.end_headers()
                self.wfile.write(data[: max(1, len(data) // 2)])
                self.wfile.flush()
                self.close_connection = True
                return True
            if kind == "garbage":
                record.status = 200
                self._send(200, b"<html>not json", "application/json")
                return True
            raise ValueError(f"unknown fault {fault!r}")

    return Handler


# ------------------------------------------------------------------------- program


def _event_ns(value: Any) -> int:
    if isinstance(value, bool) or value is None:
        return time.time_ns()
    if isinstance(value, int | float):
        v = float(value)
        return int(v * NS) if v < 1e11 else int(v * 1e6) if v < 1e14 else int(value)
    if isinstance(value, str):
        if value.isdigit():
            return _event_ns(int(value))
        try:
            return _iso_ns(value)
        except ValueError:
            return time.time_ns()
    return time.time_ns()


def load_events(path: Path) -> list[dict[str, Any]]:
    """Event objects from JSON lines or a `[{"timestamp", "event"}]` array (malformed skipped)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    values: list[Any]
    if text.lstrip().startswith("["):
        values = json.loads(text)
    else:
        values = []
        for line in text.splitlines():
            try:
                values.append(json.loads(line))
            except ValueError:
                continue
    events = []
    for value in values:
        if isinstance(value, dict) and isinstance(value.get("event"), dict) \
                and "type" not in value:
            event = dict(value["event"])
            event.setdefault("timestamp", value.get("timestamp"))
            value = event
        if isinstance(value, dict):
            events.append(value)
    return events


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.loki",
                                     description="A local Loki query_range stand-in.")
    parser.add_argument("--events", type=Path, help="event JSON lines or sleeptime JSON array")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--max-entries", type=int, default=5000)
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--bearer")
    parser.add_argument("--org-id")
    parser.add_argument("--tie-order", choices=["stored", "shuffle"], default="stored")
    parser.add_argument("--fault", action="append", default=[], metavar="SPEC")
    args = parser.parse_args(argv)
    fake = FakeLoki(max_entries=args.max_entries, user=args.user, password=args.password,
                    bearer=args.bearer, org_id=args.org_id, tie_order=args.tie_order,
                    port=args.port)
    if args.events:
        for event in load_events(args.events):
            fake.add_event(event)
    fake.faults.extend(args.fault)
    print(fake.url, flush=True)
    try:
        fake._server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        fake._server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
