"""`mgt ui [--runs-dir DIR] [--repo PATH] [--report FILE] [--host H] [--port N] [--token T]`
→ the web view served by uvicorn until Ctrl-C; prints the address to open."""

from __future__ import annotations

import argparse
import os
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from mgt.errors import MgtError, UsageError

if TYPE_CHECKING:
    import uvicorn

    from mgt.ui.app import UIConfig

__all__ = ["ui_main"]

TOKEN_ENV = "MGT_UI_TOKEN"


def _listen(host: str, port: int) -> socket.socket:
    """Bind the listening socket ourselves, so `--port 0` can print the port it got."""
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    except OSError as err:
        raise MgtError(f"cannot listen on {host}: {err.strerror or err}") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as err:
        sock.close()
        raise MgtError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
    sock.set_inheritable(True)
    return sock


def _check_host(host: str, port: int, token: str | None) -> None:
    from mgt.ui.app import is_loopback

    if not is_loopback(host) and token is None:
        raise UsageError(
            f"refusing to serve on {host} without an access token: pass --token T "
            f"(or set {TOKEN_ENV}), or keep the default --host 127.0.0.1"
        )
    if port < 0 or port > 65535:
        raise UsageError(f"--port must be 0..65535, got {port}")


def _url(host: str, sock: socket.socket) -> str:
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    return f"http://{shown}:{sock.getsockname()[1]}/"


def _server(config: UIConfig, stopping: threading.Event) -> uvicorn.Server:
    import uvicorn

    from mgt.ui.app import create_app

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            stopping.set()  # live streams end, so open pages do not hold the shutdown up
            super().handle_exit(sig, frame)

    return Server(uvicorn.Config(
        create_app(config, stopping), log_level="warning", lifespan="off",
        timeout_graceful_shutdown=5, access_log=False,
    ))


def start_in_background(runs_dir: Path, host: str, port: int) -> tuple[str, Callable[[], None]]:
    """The web view of `runs_dir` served from a daemon thread (for `mgt serve --ui`).

    Returns the address to open and a function that stops it. The token comes from
    MGT_UI_TOKEN, required off loopback as for `mgt ui`.
    """
    from mgt.ui.app import UIConfig

    token = os.environ.get(TOKEN_ENV) or None
    _check_host(host, port, token)
    sock = _listen(host, port)
    stopping = threading.Event()
    server = _server(UIConfig(runs_dir=runs_dir, repo=None, report=None, token=token), stopping)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="mgt-ui",
                              daemon=True)
    thread.start()

    def stop() -> None:
        stopping.set()
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()

    return _url(host, sock), stop


def ui_main(args: argparse.Namespace) -> int:
    from mgt.ui.app import UIConfig
    from mgt.ui.views import load_report, pr_records

    host: str = args.host
    token: str | None = args.token or os.environ.get(TOKEN_ENV) or None
    _check_host(host, args.port, token)
    runs_dir = Path(args.runs_dir)
    report = Path(args.report) if args.report else None
    repo = Path(args.repo) if args.repo else None
    if report is not None:
        load_report(report)  # a wrong file is a one-line error now, not a broken page later
    if repo is not None:
        pr_records(repo)
    config = UIConfig(runs_dir=runs_dir, repo=repo, report=report, token=token)
    sock = _listen(host, args.port)
    url = _url(host, sock)
    if token is not None and not args.token:
        print(f"mgt ui: serving {runs_dir} at {url} (open it with ?token=${TOKEN_ENV})",
              flush=True)
    elif token is not None:
        print(f"mgt ui: serving {runs_dir} at {url}?token={token}", flush=True)
    else:
        print(f"mgt ui: serving {runs_dir} at {url}", flush=True)
    print("mgt ui: press Ctrl-C to stop", file=sys.stderr, flush=True)
    server = _server(config, threading.Event())
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 0
