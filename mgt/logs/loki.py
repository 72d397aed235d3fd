"""LogQL + a time window → Loki `query_range` requests (paged, retried) → `LokiEntry`s.

    client = LokiClient("https://logs.example.net", settings=load_settings())
    for entry in client.query_range(build_logql({"llm_call"}, min_latency_ms=2000),
                                    start_ns=..., end_ns=..., direction="backward"):
        entry.timestamp, entry.line, entry.labels

Paging. Loki caps each query at `limit` entries (and rejects a limit above
its `max_entries_limit_per_query` with a 400, which the client reads to learn
the cap). Like logcli, the next page moves the window edge to the timestamp
of the last entry received (`end = ts + 1` backward, since end is exclusive;
`start = ts` forward), so entries that share that timestamp are asked for
again and the ones already yielded are dropped, counted as a multiset of
(timestamp, labels, line). When a whole page shares one timestamp the page is
doubled (up to the server's cap) so paging always moves.

Failures. 429 and 5xx answers, timeouts and answers cut mid-body are retried
with exponential backoff and jitter (or after the server's `Retry-After`,
seconds or an HTTP date), within `max_attempts` and `max_retry_seconds`.
Everything else fails at once with a one-line `LokiError` that names the URL:
a 400 carries Loki's own error text, 401/403 say the credentials were refused,
an unreachable host says so. Credentials never appear in a message.
"""

from __future__ import annotations

import email.utils
import json
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from mgt import __version__
from mgt.errors import LokiError, UsageError
from mgt.logs.settings import DEFAULT_SELECTOR, LokiSettings

__all__ = [
    "DEFAULT_SELECTOR",
    "LokiClient",
    "LokiEntry",
    "build_logql",
    "logql_string",
]

QUERY_RANGE_PATH = "/loki/api/v1/query_range"
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_CAP_MESSAGE = re.compile(
    r"max entries limit per query exceeded, limit > max_entries_limit(?:_per_query)?"
    r" \((\d+) > (\d+)\)"
)
_MAX_MESSAGE = 300


@dataclass(frozen=True, slots=True)
class LokiEntry:
    """One log entry: time in ns, the line, and the labels of its stream."""

    timestamp: int
    line: str
    labels: Mapping[str, str] = field(default_factory=dict)


def logql_string(text: str) -> str:
    """A Python string → a double-quoted LogQL string literal."""
    return json.dumps(text, ensure_ascii=False)


def build_logql(
    kinds: Collection[str] | None = None,
    *,
    session_id: str | None = None,
    min_latency_ms: float | None = None,
    selector: str = DEFAULT_SELECTOR,
) -> str:
    """The LogQL for a query, as sleeptime-logs writes it.

    One type adds a line filter on its name (`|= "llm_call"`), several a regex
    (`|~ "llm_call|error"`); a session adds `| json | session_id="<id>"`;
    a latency floor adds `| json | latency_ms >= N`. The caller still checks
    each event: a line filter on "error" also matches a transition to "error".
    """
    parts = [selector]
    wanted = sorted(k for k in (kinds or ()) if k != "other")
    if kinds and "other" not in kinds:
        if len(wanted) == 1:
            parts.append(f"|= {logql_string(wanted[0])}")
        elif wanted:
            parts.append(f"|~ {logql_string('|'.join(wanted))}")
    # No line filter for a session: its id may be a stream label rather than in the line,
    # and `| json | session_id=...` matches either way.
    labels: list[str] = []
    if session_id is not None:
        labels.append(f"session_id={logql_string(session_id)}")
    if min_latency_ms is not None:
        number = int(min_latency_ms) if float(min_latency_ms).is_integer() else min_latency_ms
        labels.append(f"latency_ms >= {number}")
    if labels:
        parts.append("| json")
        parts.extend(f"| {label}" for label in labels)
    return " ".join(parts)


class _CapExceeded(Exception):
    def __init__(self, cap: int) -> None:
        super().__init__(cap)
        self.cap = cap


class LokiClient:
    """A Loki `query_range` client: auth from `LokiSettings`, paging, retries.

    `transport` is passed to `httpx.Client` (tests use a real server on
    loopback, or `httpx.MockTransport`). `sleep` and `rng` drive the backoff.
    `on_request(message)` is told about each request (the CLI's `--verbose`).
    """

    def __init__(
        self,
        url: str,
        *,
        settings: LokiSettings | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30.0,
        page_size: int = 1000,
        max_attempts: int = 5,
        max_retry_seconds: float = 60.0,
        backoff_base: float = 0.5,
        backoff_cap: float = 8.0,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] = random.random,
        on_request: Callable[[str], None] | None = None,
    ) -> None:
        settings = settings or LokiSettings(url=url)
        self.settings = settings
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError, ValueError):
            raise UsageError(f"not a valid Loki URL: {_one_line(url)}") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise UsageError(f"not a valid Loki URL (need http:// or https://host): {url}")
        user, password = settings.user, settings.token
        if parsed.username and not user:
            user, password = parsed.username, parsed.password or password
        path = parsed.path
        cut = path.find("/loki/api/")
        if cut >= 0:
            path = path[:cut]
        base = parsed.copy_with(username=None, password=None, query=None, fragment=None,
                                path=path.rstrip("/") or "/")
        self.display_url = str(base).rstrip("/")
        self.endpoint = self.display_url + QUERY_RANGE_PATH
        self._secrets = tuple(s for s in (password, settings.bearer, settings.token) if s)

        headers = {"User-Agent": f"mgt/{__version__}", "Accept": "application/json"}
        auth: httpx.Auth | None = None
        if settings.bearer:
            headers["Authorization"] = f"Bearer {settings.bearer}"
        elif user and password:
            auth = httpx.BasicAuth(user, password)
        elif password:
            headers["Authorization"] = f"Bearer {password}"
        if settings.org_id:
            headers["X-Scope-OrgID"] = settings.org_id
        try:
            self._http = httpx.Client(
                headers=headers,
                auth=auth,
                transport=transport,
                timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
                follow_redirects=True,
            )
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as err:
            # e.g. a malformed HTTPS_PROXY in the environment
            raise LokiError(f"cannot set up the HTTP client for {self.display_url}: {err}"
                            ) from None
        self.page_size = max(1, page_size)
        self.server_cap: int | None = None
        self.max_attempts = max(1, max_attempts)
        self.max_retry_seconds = max_retry_seconds
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._sleep = sleep
        self._rng = rng
        self._on_request = on_request
        self.requests = 0
        #: Added to a "cannot connect" message (e.g. how to choose another server).
        self.connect_hint: str | None = None

    # ----------------------------------------------------------------- public

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> LokiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def query_range(
        self,
        query: str,
        *,
        start_ns: int,
        end_ns: int,
        limit: int | None = None,
        direction: str = "backward",
        page_size: int | None = None,
    ) -> Iterator[LokiEntry]:
        """Every entry of `query` in [start_ns, end_ns), newest first for "backward".

        Pages lazily: stop iterating and no further request is made. `limit`
        bounds the total (None: until the window is exhausted); `page_size`
        overrides the client's entries per request.
        """
        if direction not in ("backward", "forward"):
            raise ValueError(f"direction must be 'backward' or 'forward', not {direction!r}")
        start, end = start_ns, end_ns
        emitted = 0
        page = max(1, page_size or self.page_size)
        if self.server_cap is not None:
            page = min(page, self.server_cap)
        edge_ts: int | None = None
        edge_seen: Counter[tuple[int, str, str]] = Counter()
        while start < end and (limit is None or emitted < limit):
            at_edge = sum(edge_seen.values())
            want = page if limit is None else min(page, limit - emitted + at_edge)
            want = max(want, at_edge + 1)
            if self.server_cap is not None and want > self.server_cap:
                if at_edge + 1 > self.server_cap:
                    raise self._error(
                        f"more than {self.server_cap} entries share the timestamp {edge_ts}, "
                        f"the server's per-query limit; they cannot be paged through"
                    )
                want = self.server_cap
            try:
                entries = self._page(query, start, end, want, direction)
            except _CapExceeded as cap:
                if self.server_cap is not None and cap.cap >= self.server_cap:
                    raise self._error(f"server keeps rejecting limit {want}") from None
                self.server_cap = cap.cap
                page = min(page, cap.cap)
                continue

            remaining = edge_seen.copy()
            for entry in entries:
                if entry.timestamp == edge_ts:
                    key = _key(entry)
                    if remaining[key] > 0:
                        remaining[key] -= 1
                        continue
                yield entry
                emitted += 1
                if limit is not None and emitted >= limit:
                    return
            if len(entries) < want:
                return  # the window holds nothing more

            last_ts = entries[-1].timestamp
            here = Counter(_key(e) for e in entries if e.timestamp == last_ts)
            if last_ts == edge_ts:
                edge_seen |= here
            else:
                edge_ts, edge_seen = last_ts, here
            if sum(here.values()) >= want:
                # The whole page shares one timestamp: only a bigger page can move past it.
                page = max(page, want) * 2
            if direction == "backward":
                end = last_ts + 1
            else:
                start = last_ts

    # ---------------------------------------------------------------- private

    def _page(self, query: str, start: int, end: int, limit: int, direction: str
              ) -> list[LokiEntry]:
        params = {
            "query": query,
            "start": str(start),
            "end": str(end),
            "limit": str(limit),
            "direction": direction,
        }
        data = self._get(params)
        entries = _entries(data, self._error)
        entries.sort(key=lambda e: e.timestamp, reverse=direction == "backward")
        return entries

    def _error(self, message: str) -> LokiError:
        text = f"Loki at {self.display_url}: {message}"
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return LokiError(_one_line(text))

    def _get(self, params: dict[str, str]) -> Any:
        deadline = time.monotonic() + self.max_retry_seconds
        attempt = 0
        while True:
            attempt += 1
            self.requests += 1
            if self._on_request is not None:
                self._on_request(
                    f"GET {self.endpoint} start={params['start']} end={params['end']} "
                    f"limit={params['limit']} direction={params['direction']}"
                    + (f" (attempt {attempt})" if attempt > 1 else "")
                )
            retry_after: float | None = None
            try:
                response = self._http.get(self.endpoint, params=params)
                status = response.status_code
                if status == 200:
                    try:
                        return json.loads(response.content)
                    except (ValueError, RecursionError):
                        if _is_html(response):  # a web UI or login page: retrying cannot help
                            raise self._error(
                                "answered with an HTML page, not Loki's JSON: is this a Loki URL? "
                                f"({_body_text(response)[:80]})"
                            ) from None
                        problem = "answered with a body that is not complete JSON"
                elif status in _RETRY_STATUS:
                    problem = f"HTTP {status} {response.reason_phrase}".rstrip()
                    retry_after = _retry_after(response.headers.get("Retry-After"))
                else:
                    raise self._status_error(response)
            except httpx.TimeoutException:
                problem = "timed out"
            except (httpx.RemoteProtocolError, httpx.ReadError) as err:
                problem = f"connection dropped mid-answer ({type(err).__name__})"
            except httpx.ConnectError as err:
                hint = f"; {self.connect_hint}" if self.connect_hint else ""
                raise self._error(f"cannot connect ({_reason(err)}){hint}") from None
            except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError) as err:
                raise self._error(f"request failed: {type(err).__name__}: {err}") from None

            delay = retry_after if retry_after is not None else self._backoff(attempt)
            if attempt >= self.max_attempts:
                raise self._error(f"{problem}; gave up after {attempt} attempts")
            if time.monotonic() + delay > deadline:
                raise self._error(
                    f"{problem}; gave up after {attempt} attempts "
                    f"(next retry in {delay:.0f}s would pass the {self.max_retry_seconds:.0f}s "
                    "retry budget)"
                )
            self._sleep(delay)

    def _backoff(self, attempt: int) -> float:
        ceiling: float = min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))
        return ceiling / 2 + self._rng() * ceiling / 2  # "equal jitter": never 0, never bursty

    def _status_error(self, response: httpx.Response) -> Exception:
        status = response.status_code
        text = _body_text(response)
        if status == 400:
            cap = _CAP_MESSAGE.search(text)
            if cap is not None:
                return _CapExceeded(int(cap.group(2)))
            return self._error(f"query rejected (HTTP 400): {text or 'no details'}")
        if status in (401, 403):
            what = "unauthorized" if status == 401 else "forbidden"
            return self._error(
                f"access refused (HTTP {status} {what}): check GRAFANA_LOKI_USER / "
                "GRAFANA_LOKI_TOKEN / GRAFANA_LOKI_BEARER / GRAFANA_LOKI_ORG_ID"
                + (f" ({text})" if text else "")
            )
        if status == 404:
            return self._error(f"HTTP 404 for {QUERY_RANGE_PATH}: is this a Loki URL?")
        return self._error(f"HTTP {status} {response.reason_phrase}: {text or 'no details'}")


def _key(entry: LokiEntry) -> tuple[int, str, str]:
    labels = ",".join(f"{k}={v}" for k, v in sorted(entry.labels.items()))
    return entry.timestamp, labels, entry.line


def _entries(data: Any, error: Callable[[str], LokiError]) -> list[LokiEntry]:
    """A query_range answer → its entries (all streams), or a LokiError for another shape."""
    if not isinstance(data, dict):
        raise error("answer is not a JSON object")
    if data.get("status") != "success":
        detail = data.get("error") or data.get("message") or data.get("status")
        raise error(f"query failed: {detail}")
    body = data.get("data")
    if not isinstance(body, dict):
        raise error("answer has no 'data' object")
    result_type = body.get("resultType")
    if result_type != "streams":
        raise error(f"expected log streams, got resultType {result_type!r} (a metric query?)")
    result = body.get("result")
    if not isinstance(result, list):
        raise error("answer has no 'data.result' list")
    entries: list[LokiEntry] = []
    for stream in result:
        if not isinstance(stream, dict):
            raise error("a stream in the answer is not an object")
        raw_labels = stream.get("stream")
        labels = (
            {str(k): str(v) for k, v in raw_labels.items()} if isinstance(raw_labels, dict) else {}
        )
        values = stream.get("values")
        if not isinstance(values, list):
            raise error("a stream in the answer has no 'values' list")
        for value in values:
            if not (isinstance(value, list) and len(value) >= 2 and isinstance(value[1], str)):
                raise error("an entry in the answer is not a [timestamp, line] pair")
            try:
                ts = int(value[0])
            except (TypeError, ValueError):
                raise error(f"an entry has a bad timestamp {str(value[0])[:40]!r}") from None
            entries.append(LokiEntry(ts, value[1], labels))
    return entries


def _retry_after(value: str | None) -> float | None:
    """A Retry-After header (seconds or an HTTP date) → seconds to wait, or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def _is_html(response: httpx.Response) -> bool:
    """A page for a browser: served as HTML, or markup served as anything but JSON (a body
    labelled JSON may just be cut or garbled on the way, which a retry can fix)."""
    kind = response.headers.get("content-type", "").lower()
    if "html" in kind:
        return True
    return "json" not in kind and response.content.lstrip()[:1] == b"<"


def _body_text(response: httpx.Response) -> str:
    """Loki's error text: a JSON `error`/`message` field, or the plain body, on one line."""
    try:
        text = response.text
    except (httpx.HTTPError, UnicodeDecodeError):
        return ""
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        for key in ("error", "message"):
            if isinstance(data.get(key), str):
                text = data[key]
                break
    return _one_line(text)


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


def _reason(err: httpx.HTTPError) -> str:
    cause: BaseException | None = err
    while cause is not None and cause.__cause__ is not None:
        cause = cause.__cause__
    text = str(cause) if cause is not None else ""
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", text)
    if "WRONG_VERSION_NUMBER" in text or "record layer failure" in text:
        # OpenSSL's words for "the other end answered in plain HTTP"
        return "no TLS at this address: the server speaks plain HTTP, try http://"
    return _one_line(text or type(err).__name__)
