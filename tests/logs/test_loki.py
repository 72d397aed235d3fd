"""The Loki client against the stand-in: paging, auth, retries, errors, LogQL, LokiSource."""

from __future__ import annotations

import json
import random
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from mgt.errors import LokiError, UsageError
from mgt.logs.loki import LokiClient, build_logql
from mgt.logs.settings import LokiSettings
from mgt.logs.sources import LokiSource, open_source
from tests.fakes.loki import FakeLoki

from .helpers import T0, make_events

SECRET = "glc_sekret-TOKEN-value"
FAR = 2 * 10**18


@pytest.fixture
def fake() -> Iterator[FakeLoki]:
    with FakeLoki() as server:
        yield server


def client_for(fake: FakeLoki, **kwargs: Any) -> LokiClient:
    settings = kwargs.pop("settings", LokiSettings(url=fake.url))
    kwargs.setdefault("sleep", lambda s: None)
    return LokiClient(fake.url, settings=settings, **kwargs)


def fill_with_ties(fake: FakeLoki, n: int, seed: int) -> list[tuple[int, int]]:
    """`n` entries where most timestamps are shared by several entries; returns (ts, i)."""
    rng = random.Random(seed)
    ts, out = T0, []
    for i in range(n):
        if rng.random() < 0.4:
            ts += rng.randint(1, 5)
        stream = {"app": "tidepool", "level": rng.choice(["info", "error"])}
        fake.add(ts, json.dumps({"type": "error", "i": i}), stream)
        out.append((ts, i))
    return out


def collect(client: LokiClient, direction: str, query: str = '{app="tidepool"}',
            **kwargs: Any) -> list[tuple[int, int]]:
    return [(e.timestamp, json.loads(e.line)["i"])
            for e in client.query_range(query, start_ns=0, end_ns=FAR, direction=direction,
                                        **kwargs)]


# ------------------------------------------------------------------------ paging


@pytest.mark.parametrize("direction", ["backward", "forward"])
@pytest.mark.parametrize("tie_order", ["stored", "shuffle"])
@pytest.mark.parametrize("page_size", [3, 7, 50])
def test_paging_has_no_duplicates_and_no_gaps(direction: str, tie_order: str,
                                              page_size: int) -> None:
    with FakeLoki(tie_order=tie_order, seed=page_size) as fake:
        stored = fill_with_ties(fake, 600, seed=page_size)
        client = client_for(fake, page_size=page_size)
        got = collect(client, direction)
    assert len(got) == len(stored)
    assert sorted(got) == sorted(stored)
    times = [ts for ts, _ in got]
    assert times == sorted(times, reverse=direction == "backward")
    assert client.requests > 5  # it really paged


@pytest.mark.parametrize("direction", ["backward", "forward"])
def test_a_timestamp_shared_by_more_than_a_page(direction: str) -> None:
    with FakeLoki(tie_order="shuffle", max_entries=40) as fake:
        for i in range(10):
            fake.add(T0 + i, json.dumps({"i": i}))
        for i in range(10, 35):  # 25 entries at one instant, page size 4
            fake.add(T0 + 100, json.dumps({"i": i}))
        for i in range(35, 45):
            fake.add(T0 + 200 + i, json.dumps({"i": i}))
        got = collect(client_for(fake, page_size=4), direction)
    assert sorted(i for _, i in got) == list(range(45))


def test_more_entries_at_one_instant_than_the_server_allows_is_an_error() -> None:
    with FakeLoki(max_entries=10) as fake:
        for i in range(15):
            fake.add(T0, json.dumps({"i": i}))
        fake.add(T0 - 5, json.dumps({"i": 99}))
        with pytest.raises(LokiError, match="more than 10 entries share the timestamp"):
            collect(client_for(fake, page_size=4), "backward")


@pytest.mark.parametrize("direction", ["backward", "forward"])
def test_limit_across_pages(direction: str) -> None:
    with FakeLoki(tie_order="shuffle") as fake:
        stored = fill_with_ties(fake, 300, seed=3)
        got = collect(client_for(fake, page_size=9), direction, limit=100)
    assert len(got) == 100 and len(set(got)) == 100
    ordered = sorted((ts for ts, _ in stored), reverse=direction == "backward")
    assert [ts for ts, _ in got] == ordered[:100]


def test_the_server_cap_is_learned_from_its_400() -> None:
    with FakeLoki(max_entries=25) as fake:
        stored = fill_with_ties(fake, 120, seed=5)
        client = client_for(fake)  # asks for 1000 per page at first
        got = collect(client, "backward")
        statuses = [r.status for r in fake.query_requests]
    assert sorted(got) == sorted(stored)
    assert client.server_cap == 25
    assert statuses[0] == 400 and all(s == 200 for s in statuses[1:])
    assert all(int(r.params["limit"]) <= 25 for r in fake.query_requests[1:])


def test_window_start_inclusive_end_exclusive(fake: FakeLoki) -> None:
    for i in range(10):
        fake.add(T0 + i, json.dumps({"i": i}))
    client = client_for(fake)
    got = [json.loads(e.line)["i"] for e in client.query_range(
        '{app="tidepool"}', start_ns=T0 + 2, end_ns=T0 + 7, direction="forward")]
    assert got == [2, 3, 4, 5, 6]
    request = fake.query_requests[-1]
    assert request.params["start"] == str(T0 + 2) and request.params["end"] == str(T0 + 7)
    assert request.params["direction"] == "forward"


def test_iteration_is_lazy(fake: FakeLoki) -> None:
    fill_with_ties(fake, 100, seed=1)
    client = client_for(fake, page_size=10)
    first = next(iter(client.query_range('{app="tidepool"}', start_ns=0, end_ns=FAR)))
    assert first.labels["app"] == "tidepool"
    assert len(fake.query_requests) == 1


# -------------------------------------------------------------------------- auth


@pytest.mark.parametrize(("server", "settings", "header"), [
    ({"user": "12345", "password": SECRET}, {"user": "12345", "token": SECRET}, "Basic "),
    ({"bearer": SECRET}, {"bearer": SECRET}, "Bearer "),
    ({"bearer": SECRET}, {"token": SECRET}, "Bearer "),  # a token without a user
    ({"bearer": SECRET, "org_id": "tenant-1"}, {"bearer": SECRET, "org_id": "tenant-1"},
     "Bearer "),
    ({"org_id": "tenant-1"}, {"org_id": "tenant-1"}, None),
])
def test_auth_variants(server: dict[str, str], settings: dict[str, str],
                       header: str | None) -> None:
    with FakeLoki(**server) as fake:
        fake.add(T0, '{"i": 0}')
        client = client_for(fake, settings=LokiSettings(url=fake.url, **settings))
        assert collect(client, "backward") == [(T0, 0)]
        sent = fake.query_requests[-1].headers
    if header is None:
        assert "authorization" not in sent
    else:
        assert sent["authorization"].startswith(header)
    assert sent.get("x-scope-orgid") == server.get("org_id")


def test_credentials_in_the_url() -> None:
    with FakeLoki(user="u", password=SECRET) as fake:
        fake.add(T0, '{"i": 0}')
        url = fake.url.replace("http://", f"http://u:{SECRET}@")
        client = LokiClient(url)
        assert [e.timestamp for e in client.query_range(
            '{app="tidepool"}', start_ns=0, end_ns=FAR)] == [T0]
        assert SECRET not in client.display_url and SECRET not in client.endpoint


@pytest.mark.parametrize(("server", "settings", "expected"), [
    ({"user": "u", "password": SECRET}, {}, "HTTP 401"),
    ({"user": "u", "password": SECRET}, {"user": "u", "token": SECRET + "x"}, "HTTP 401"),
    ({"bearer": SECRET}, {"bearer": "wrong-" + SECRET}, "HTTP 401"),
    ({"org_id": "t"}, {"token": SECRET}, "no org id"),
])
def test_refused_credentials_give_one_line_without_the_token(
        server: dict[str, str], settings: dict[str, str], expected: str) -> None:
    with FakeLoki(**server) as fake:
        client = client_for(fake, settings=LokiSettings(url=fake.url, **settings))
        with pytest.raises(LokiError) as info:
            collect(client, "backward")
    message = str(info.value)
    assert expected in message and fake.url in message
    assert "\n" not in message and SECRET not in message


# ----------------------------------------------------------------------- retries


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def test_faults_are_retried_then_succeed(fake: FakeLoki) -> None:
    stored = fill_with_ties(fake, 30, seed=2)
    fake.faults.extend(["429:0", "503", "cut", "garbage", "500", "502"])
    sleeps = Sleeps()
    client = client_for(fake, max_attempts=7, sleep=sleeps, backoff_base=0.2, backoff_cap=1.0,
                        rng=lambda: 0.5)
    assert sorted(collect(client, "backward")) == sorted(stored)
    assert [r.status for r in fake.query_requests] == [429, 503, 200, 200, 500, 502, 200]
    assert sleeps[0] == 0.0  # Retry-After: 0
    # equal jitter: half the ceiling plus rng() x half; ceilings 0.4, 0.8, 1.0 (cap), 1.0
    assert sleeps[1:] == pytest.approx([0.3, 0.6, 0.75, 0.75, 0.75])


def test_retry_after_seconds_and_http_date_are_honoured(fake: FakeLoki) -> None:
    fake.add(T0, '{"i": 0}')
    fake.faults.extend(["429:3", "429:date"])
    sleeps = Sleeps()
    client = client_for(fake, sleep=sleeps)
    assert collect(client, "backward") == [(T0, 0)]
    assert sleeps[0] == 3.0
    assert 0.0 <= sleeps[1] <= 2.0  # the date is ~1.5 s ahead, to the second


def test_real_backoff_sleeps(fake: FakeLoki) -> None:
    fake.add(T0, '{"i": 0}')
    fake.faults.extend(["503", "429:0"])
    client = LokiClient(fake.url, backoff_base=0.01)
    assert collect(client, "backward") == [(T0, 0)]


def test_retries_exhausted_is_one_line(fake: FakeLoki) -> None:
    fake.faults.extend(["503"] * 5)
    client = client_for(fake, max_attempts=3)
    with pytest.raises(LokiError) as info:
        collect(client, "backward")
    message = str(info.value)
    assert "HTTP 503" in message and "gave up after 3 attempts" in message
    assert fake.url in message and "\n" not in message
    assert len(fake.query_requests) == 3


def test_retry_after_beyond_the_budget_gives_up_at_once(fake: FakeLoki) -> None:
    fake.faults.append("429:600")
    sleeps = Sleeps()
    client = client_for(fake, max_retry_seconds=30, sleep=sleeps)
    with pytest.raises(LokiError, match="retry budget"):
        collect(client, "backward")
    assert sleeps == [] and len(fake.query_requests) == 1


def test_slow_answers_time_out_and_are_retried(fake: FakeLoki) -> None:
    fake.add(T0, '{"i": 0}')
    fake.faults.append("slow:1.5")
    client = client_for(fake, timeout=0.3)
    assert collect(client, "backward") == [(T0, 0)]
    fake.faults.extend(["slow:1.5"] * 2)
    client = client_for(fake, timeout=0.3, max_attempts=2)
    with pytest.raises(LokiError, match="timed out; gave up after 2 attempts"):
        collect(client, "backward")


# ------------------------------------------------------------------------ errors


def test_400_shows_lokis_text(fake: FakeLoki) -> None:
    with pytest.raises(LokiError) as info:
        collect(client_for(fake), "backward", query='{app="tidepool"} |= ')
    assert "query rejected (HTTP 400): parse error at line 1, col" in str(info.value)
    assert len(fake.query_requests) == 1  # a 400 is not retried


def test_unreachable_host_is_one_line() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    client = LokiClient(url, settings=LokiSettings(url=url, token=SECRET))
    with pytest.raises(LokiError) as info:
        list(client.query_range('{app="tidepool"}', start_ns=0, end_ns=FAR))
    message = str(info.value)
    assert message.startswith(f"Loki at {url}: cannot connect")
    assert "\n" not in message and SECRET not in message


def test_wrong_path_is_a_404_hint(fake: FakeLoki) -> None:
    client = LokiClient(fake.url + "/grafana")
    with pytest.raises(LokiError, match=r"HTTP 404 .* is this a Loki URL"):
        list(client.query_range('{app="tidepool"}', start_ns=0, end_ns=FAR))


def test_url_with_the_api_path_is_accepted(fake: FakeLoki) -> None:
    fake.add(T0, '{"i": 0}')
    client = LokiClient(fake.url + "/loki/api/v1/query_range")
    assert collect(client, "backward") == [(T0, 0)]


@pytest.mark.parametrize("url", ["ftp://x", "http://", "not a url"])
def test_bad_urls(url: str) -> None:
    with pytest.raises(UsageError):
        LokiClient(url)


def mock_client(status: int, body: Any, headers: dict[str, str] | None = None) -> LokiClient:
    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(body, bytes):
            return httpx.Response(status, content=body, headers=headers)
        return httpx.Response(status, json=body, headers=headers)

    return LokiClient("http://loki.test", transport=httpx.MockTransport(handler),
                      sleep=lambda s: None, max_attempts=2)


@pytest.mark.parametrize(("status", "body", "expected"), [
    (200, {"status": "success", "data": {"resultType": "matrix", "result": []}},
     "resultType 'matrix'"),
    (200, {"status": "error", "error": "boom"}, "query failed: boom"),
    (200, {"status": "success", "data": {"resultType": "streams", "result": [
        {"stream": {}, "values": [["x", "line"]]}]}}, "bad timestamp"),
    (200, {"status": "success", "data": {"resultType": "streams", "result": [
        {"stream": {}, "values": [[1]]}]}}, "not a [timestamp, line] pair"),
    (200, [], "not a JSON object"),
    (200, b"\x00not json", "not complete JSON; gave up after 2 attempts"),
    (400, {"status": "error", "errorType": "bad_data", "error": "invalid query"},
     "HTTP 400): invalid query"),
    (403, b"forbidden\nsecond line", "HTTP 403 forbidden"),
    (418, b"teapot", "HTTP 418"),
])
def test_answer_shapes(status: int, body: Any, expected: str) -> None:
    with pytest.raises(LokiError) as info:
        list(mock_client(status, body).query_range('{app="x"}', start_ns=0, end_ns=FAR))
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_every_stream_is_merged_in_time_order() -> None:
    body = {"status": "success", "data": {"resultType": "streams", "result": [
        {"stream": {"level": "info"}, "values": [["30", "c"], ["10", "a"]]},
        {"stream": {"level": "error"}, "values": [["20", "b"]]},
    ]}}
    entries = list(mock_client(200, body).query_range('{app="x"}', start_ns=0, end_ns=FAR))
    assert [(e.timestamp, e.line, e.labels["level"]) for e in entries] == [
        (30, "c", "info"), (20, "b", "error"), (10, "a", "info")]


# ------------------------------------------------------------------------- LogQL


@pytest.mark.parametrize(("kwargs", "query"), [
    ({}, '{app="tidepool"}'),
    ({"kinds": {"graph_transition"}}, '{app="tidepool"} |= "graph_transition"'),
    ({"kinds": {"llm_call"}, "min_latency_ms": 2000},
     '{app="tidepool"} |= "llm_call" | json | latency_ms >= 2000'),
    ({"kinds": {"error", "llm_call"}}, '{app="tidepool"} |~ "error|llm_call"'),
    ({"session_id": 'a"b'}, '{app="tidepool"} | json | session_id="a\\"b"'),
    ({"kinds": {"other", "error"}}, '{app="tidepool"}'),
])
def test_build_logql(kwargs: dict[str, Any], query: str) -> None:
    assert build_logql(**kwargs) == query


# -------------------------------------------------------------------- LokiSource


def loaded_fake(**kwargs: Any) -> FakeLoki:
    fake = FakeLoki(**kwargs)
    for event in make_events(200, step_s=60):
        fake.add_event(event)
    return fake.start()


def test_loki_source_filters_what_line_filters_let_through() -> None:
    fake = loaded_fake()
    try:
        now = T0 + 200 * 60 * 10**9
        source = open_source(fake.url, since="3h", now_ns=now,
                             settings=LokiSettings(url=fake.url))
        assert isinstance(source, LokiSource)
        errors = list(source.iter_events("error"))
        # `|= "error"` also matches transitions to "error"; only error events come out.
        assert {e.type for e in errors} == {"error"}
        assert [e.fields["i"] for e in errors] == list(range(22, 200, 5))  # oldest first
        latest = source.latest(3, "llm_call", min_latency_ms=3000)
        assert len(latest) == 3 and all(e.number("latency_ms") >= 3000 for e in latest)
        assert latest[0].timestamp > latest[1].timestamp > latest[2].timestamp
        assert source.last_query == '{app="tidepool"} |= "llm_call" | json | latency_ms >= 3000'
        session = source.latest(100, session_id="s3")
        assert {e.session_id for e in session} == {"s3"} and len(session) == 26
        source.close()
    finally:
        fake.stop()


def test_loki_source_min_latency_ignores_strings() -> None:
    # Real Loki keeps a line whose latency_ms is not a number (with __error__); we drop it.
    with FakeLoki() as fake:
        fake.add_event({"type": "llm_call", "latency_ms": "slow", "timestamp": T0})
        fake.add_event({"type": "llm_call", "latency_ms": 5000, "timestamp": T0 + 1})
        fake.add(T0 + 2, "not json at all")
        source = open_source(fake.url, since="1h", now_ns=T0 + 10**9,
                             settings=LokiSettings(url=fake.url))
        got = source.latest(10, "llm_call", min_latency_ms=2000)
        assert [e.fields["latency_ms"] for e in got] == [5000]
        assert len(list(source.iter_events())) == 2
        assert source.skipped == 1


def test_a_session_id_that_is_only_a_stream_label() -> None:
    with FakeLoki() as fake:
        fake.add(T0, '{"type": "error", "message": "label"}',
                 {"app": "tidepool", "session_id": "abc"})
        fake.add(T0 + 1, '{"type": "error", "message": "field", "session_id": "abc"}')
        fake.add(T0 + 2, '{"type": "error", "message": "other", "session_id": "abd"}')
        source = open_source(fake.url, since="1h", now_ns=T0 + 10**9,
                             settings=LokiSettings(url=fake.url))
        got = source.latest(10, session_id="abc")
    assert [(e.text("message"), e.session_id) for e in got] == [("field", "abc"),
                                                                ("label", "abc")]
