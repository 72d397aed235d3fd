"""A `UIConfig` → the read-only Starlette app of `mgt ui`: pages, the live stream, the guard.

Pages are rendered on the server by Jinja2 with autoescape on, from the view
models of `mgt.ui.views` (the only module that reads data). The browser gets
plain HTML, two small static scripts (the live run page, the charts) and the
vendored Chart.js; a strict Content-Security-Policy (scripts from this origin
only, no inline script or handler) means text that slipped through escaping
still could not run.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import (
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mgt.errors import JournalError, MgtError
from mgt.ui import views

__all__ = ["COOKIE", "CSP", "UIConfig", "create_app", "is_loopback"]

HERE = Path(__file__).parent
COOKIE = "mgt_ui_token"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
#: graphviz SVG, shown through <img>: no script could run there, and none may run here either.
SVG_CSP = "default-src 'none'; style-src 'unsafe-inline'"


@dataclass(frozen=True)
class UIConfig:
    runs_dir: Path
    repo: Path | None = None
    report: Path | None = None
    token: str | None = None
    #: How often the live stream looks at a run's events.jsonl.
    poll_seconds: float = 0.4
    #: A running run is read again at least this often (its process may have died).
    refresh_seconds: float = 5.0


class Guard:
    """Security headers on every response; the access token, or loopback Host names only.

    Without a token the server listens on loopback, and a request whose Host is
    not a loopback name is refused: a web page elsewhere cannot reach it through
    DNS rebinding. With a token, `?token=` once sets an HttpOnly cookie (and
    redirects to the same address without it); every request then needs the cookie.
    """

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                for key, value in SECURITY_HEADERS:
                    if key not in names:
                        headers.append((key, value))
                message["headers"] = headers
            await send(message)

        request = Request(scope)
        refusal = self._refusal(request)
        if refusal is not None:
            await refusal(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)

    def _refusal(self, request: Request) -> Response | None:
        if self.token is None:
            if not is_loopback(_host_name(request.headers.get("host", ""))):
                return PlainTextResponse("mgt ui: unknown Host\n", status_code=403)
            return None
        given = request.query_params.get("token")
        if given is not None and _same(given, self.token):
            rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
            # one leading slash: `//host/...` would send the browser to another site
            path = "/" + request.url.path.lstrip("/")
            target = path + (f"?{urlencode(rest)}" if rest else "")
            response = RedirectResponse(target, status_code=303)
            response.set_cookie(COOKIE, self.token, httponly=True, samesite="strict", path="/")
            return response
        cookie = request.cookies.get(COOKIE)
        if cookie is not None and _same(cookie, self.token):
            return None
        return PlainTextResponse(
            "mgt ui: an access token is needed: open the address `mgt ui` printed\n",
            status_code=401,
        )


def is_loopback(host: str) -> bool:
    """`localhost`, or an IPv4/IPv6 loopback address (`127.0.0.1`, `127.0.0.2`, `[::1]`)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _host_name(header: str) -> str:
    """`127.0.0.1:8765` → `127.0.0.1`, `[::1]:8765` → `[::1]`."""
    if header.startswith("["):
        return header.split("]", 1)[0].lower() + "]"
    return header.rsplit(":", 1)[0].lower()


def _same(given: str, token: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "replace"), token.encode("utf-8"))


SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
]


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"), autoescape=True,
        trim_blocks=True, lstrip_blocks=True,
    )
    env.policies["json.dumps_kwargs"] = {"sort_keys": False, "ensure_ascii": False}
    return env


def create_app(config: UIConfig, stopping: threading.Event | None = None) -> Guard:
    """The app; `stopping` set (on Ctrl-C) ends the live streams, so the server can stop."""
    stopping = stopping or threading.Event()

    templates = Jinja2Templates(env=_environment())

    def page(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
        context.setdefault("has_report", config.report is not None)
        context.setdefault("has_repo", config.repo is not None)
        return templates.TemplateResponse(request, name, context, status_code=status_code)

    def not_found(request: Request, message: str) -> Response:
        return page(request, "message.html", 404, title="Not found", message=message)

    async def home(request: Request) -> Response:
        return RedirectResponse("/runs", status_code=303)

    async def runs(request: Request) -> Response:
        status = request.query_params.get("status") or None
        machine = request.query_params.get("machine") or None
        rows, statuses, machines = await run_in_threadpool(
            views.run_rows, config.runs_dir, status=status, machine=machine
        )
        return page(request, "runs.html", rows=rows, statuses=statuses, machines=machines,
                    status=status or "", machine=machine or "",
                    runs_dir=str(config.runs_dir), nav="runs")

    async def run(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        try:
            view = await run_in_threadpool(views.run_view, config.runs_dir, run_id)
        except JournalError as err:
            return not_found(request, str(err))
        return page(request, "run.html", run=view, nav="runs")

    async def run_states(request: Request) -> Response:
        """The states section alone, which the live page swaps in as the run goes on."""
        run_id = request.path_params["run_id"]
        try:
            view = await run_in_threadpool(views.run_view, config.runs_dir, run_id)
        except JournalError as err:
            return PlainTextResponse(str(err), status_code=404)
        return page(request, "_states.html", run=view)

    async def run_graph(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        try:
            graph = await run_in_threadpool(views.run_graph, config.runs_dir, run_id)
        except JournalError as err:
            return PlainTextResponse(str(err), status_code=404)
        if graph.svg is None:
            return PlainTextResponse(graph.problem or "no drawing", status_code=404)
        return Response(graph.svg, media_type="image/svg+xml",
                        headers={"content-security-policy": SVG_CSP})

    async def run_live(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        if not await run_in_threadpool(views.known_run, config.runs_dir, run_id):
            return PlainTextResponse(f"no run {run_id!r}", status_code=404)
        return StreamingResponse(
            _live(request, config, run_id, stopping), media_type="text/event-stream",
            headers={"x-accel-buffering": "no"},
        )

    async def run_patterns(request: Request) -> Response:
        run_id, state = request.path_params["run_id"], request.path_params["state"]
        try:
            reports = await run_in_threadpool(views.pattern_reports_of, config.runs_dir, run_id)
        except JournalError as err:
            return not_found(request, str(err))
        if state not in reports:
            return not_found(request, f"state {state!r} of run {run_id} has no PatternReport")
        report = views.report_view(reports[state], f"{run_id} · {state}")
        return page(request, "patterns.html", report=report, run_id=run_id, nav="patterns")

    async def patterns(request: Request) -> Response:
        if config.report is None:
            return page(request, "message.html", 404, title="Patterns", nav="patterns",
                        message="Start `mgt ui --report FILE` with a report from "
                                "`mgt analyze --json`, or open a run whose state "
                                "produced a PatternReport.")
        try:
            report = await run_in_threadpool(views.load_report, config.report)
        except MgtError as err:
            return page(request, "message.html", 500, title="Patterns", message=str(err))
        view = views.report_view(report, config.report.name)
        return page(request, "patterns.html", report=view, run_id=None, nav="patterns")

    async def prs(request: Request) -> Response:
        if config.repo is None:
            return page(request, "message.html", 404, title="Pull requests", nav="prs",
                        message="Start `mgt ui --repo PATH` with the repository "
                                "whose local PR records to show.")
        try:
            records = await run_in_threadpool(views.pr_records, config.repo)
        except MgtError as err:
            return page(request, "message.html", 500, title="Pull requests", message=str(err))
        return page(request, "prs.html", prs=records, repo=str(config.repo), nav="prs")

    async def pr(request: Request) -> Response:
        if config.repo is None:
            return not_found(request, "no repository: start `mgt ui --repo PATH`")
        number = request.path_params["number"]
        try:
            records = await run_in_threadpool(views.pr_records, config.repo)
        except MgtError as err:
            return page(request, "message.html", 500, title="Pull requests", message=str(err))
        found = next((r for r in records if r.number == number), None)
        if found is None:
            return not_found(request, f"no pull request #{number}")
        return page(request, "pr.html", pr=found, nav="prs")

    get = ["GET"]
    routes = [
        Route("/", home, methods=get),
        Route("/runs", runs, methods=get),
        Route("/runs/{run_id}", run, methods=get),
        Route("/runs/{run_id}/states", run_states, methods=get),
        Route("/runs/{run_id}/graph.svg", run_graph, methods=get),
        Route("/runs/{run_id}/live", run_live, methods=get),
        Route("/runs/{run_id}/patterns/{state}", run_patterns, methods=get),
        Route("/patterns", patterns, methods=get),
        Route("/prs", prs, methods=get),
        Route("/prs/{number:int}", pr, methods=get),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    return Guard(Starlette(routes=routes), config.token)


async def _live(
    request: Request, config: UIConfig, run_id: str, stopping: threading.Event
) -> AsyncIterator[str]:
    """Server-sent events: `update` with a run snapshot whenever its events.jsonl grows,
    then `end` once the run is no longer running. A stopping server just closes the
    stream (the browser would reconnect to a restarted one)."""
    last_size = -2
    last_read = 0.0
    last_sent = time.monotonic()
    while not stopping.is_set() and not await request.is_disconnected():
        size = views.events_size(config.runs_dir, run_id)
        now = time.monotonic()
        if size != last_size or now - last_read >= config.refresh_seconds:
            last_size, last_read = size, now
            try:
                snapshot = await run_in_threadpool(views.run_snapshot, config.runs_dir, run_id)
            except JournalError:
                yield "event: end\ndata: {}\n\n"
                return
            yield f"event: update\ndata: {json.dumps(snapshot, ensure_ascii=False)}\n\n"
            last_sent = now
            if snapshot["status"] != "running":
                yield "event: end\ndata: {}\n\n"
                return
        elif now - last_sent >= 15:
            yield ": keep-alive\n\n"  # proxies close a silent connection
            last_sent = now
        await asyncio.sleep(config.poll_seconds)
