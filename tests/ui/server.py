"""`mgt ui` in a subprocess as a user starts it, and headless Chromium driven by Playwright."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]


class Server:
    """A running `mgt ui`; `url` is the address it printed."""

    def __init__(self, *args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> None:
        full_env = {k: v for k, v in os.environ.items() if k != "MGT_UI_TOKEN"}
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mgt", "ui", "--port", "0", *map(str, args)],
            cwd=cwd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        found = re.search(r"http://\S+", line)
        if found is None:
            self.proc.kill()
            _, err = self.proc.communicate(timeout=30)
            raise AssertionError(f"mgt ui did not print its address: {line!r} {err}")
        self.printed = line
        self.url = found[0].split("?")[0].rstrip("/")

    def stop(self) -> tuple[int, str]:
        """Ctrl-C, as a user stops it; the exit code and stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return self.proc.returncode, err


@contextlib.contextmanager
def serving(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> Iterator[Server]:
    server = Server(*args, cwd=cwd, env=env)
    try:
        yield server
    finally:
        server.stop()


def need_chromium() -> None:
    """Skip on a developer's machine without Chromium; in CI it must be there."""
    missing = [what for what, ok in [
        (CHROMIUM, os.access(CHROMIUM, os.X_OK)),
        ("python playwright", _has_playwright()),
    ] if not ok]
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{', '.join(missing)} missing: scripts/install-test-tools.sh installs it")
        pytest.skip(f"CHROMIUM NOT AVAILABLE ({', '.join(missing)}): "
                    "run scripts/install-test-tools.sh")


def _has_playwright() -> bool:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return True
