"""Environment and `.tidepool.env` → `LokiSettings` (URL, credentials, tenant).

Variables (the environment wins over the file):

    GRAFANA_LOKI_URL      Loki base URL (default http://localhost:3100, as sleeptime-logs)
    GRAFANA_LOKI_USER     user for HTTP Basic auth (Grafana Cloud: the numeric user id)
    GRAFANA_LOKI_TOKEN    password/API token; with no user it is sent as a bearer token
    GRAFANA_LOKI_BEARER   bearer token (takes precedence over user/token)
    GRAFANA_LOKI_ORG_ID   tenant, sent as X-Scope-OrgID

`.tidepool.env` is looked up in the current directory and its parents (the
first one found is used). It holds `KEY=VALUE` lines: `export ` prefixes,
blank lines and `#` comments are allowed, values may be single-quoted
(literal), double-quoted (with `\\n`, `\\"`, `\\\\` escapes) or bare (a ` #`
starts a comment). Lines that do not parse are ignored.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DEFAULT_LOKI_URL",
    "ENV_FILE_NAME",
    "LokiSettings",
    "find_env_file",
    "load_settings",
    "parse_env_file",
]

DEFAULT_LOKI_URL = "http://localhost:3100"
#: The stream selector of the graph's logs when GRAFANA_LOKI_SELECTOR sets none.
DEFAULT_SELECTOR = '{app="tidepool"}'
_SELECTOR = re.compile(r'\{\s*[A-Za-z_][A-Za-z0-9_]*\s*(=|!=|=~|!~)\s*"(?:[^"\\]|\\.)*"'
                       r'(\s*,\s*[A-Za-z_][A-Za-z0-9_]*\s*(=|!=|=~|!~)\s*"(?:[^"\\]|\\.)*")*\s*\}')


def check_selector(text: str, where: str = "GRAFANA_LOKI_SELECTOR") -> str:
    """A LogQL stream selector (`{app="story", env="prod"}`) as given; a UsageError naming
    `where` for anything else (it is sent to Loki and written into every report)."""
    from mgt.errors import UsageError

    selector = text.strip()
    if not _SELECTOR.fullmatch(selector):
        raise UsageError(f"GRAFANA_LOKI_SELECTOR ({where}): {selector[:80]!r} is not a LogQL "
                         'stream selector such as {app="my-graph"} or {app="x", env="prod"}')
    return selector
ENV_FILE_NAME = ".tidepool.env"

_LINE = re.compile(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$"}


@dataclass(frozen=True)
class LokiSettings:
    """Where Loki is and how to authenticate; `secrets` lists values never to print."""

    url: str = DEFAULT_LOKI_URL
    user: str | None = None
    token: str | None = None
    bearer: str | None = None
    org_id: str | None = None
    url_from: str = "default"
    #: the LogQL stream selector of the graph's logs (GRAFANA_LOKI_SELECTOR)
    selector: str = DEFAULT_SELECTOR

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.token, self.bearer) if s)

    def __repr__(self) -> str:
        # Never show a credential, even in a debugger or a log of this object.
        hidden = "***" if self.secrets else None
        return (
            f"LokiSettings(url={self.url!r}, user={self.user!r}, token={hidden!r}, "
            f"org_id={self.org_id!r})"
        )


def _unquote(raw: str) -> str:
    raw = raw.strip()
    if raw[:1] == "'":
        end = raw.find("'", 1)
        return raw[1:end] if end > 0 else raw[1:]
    if raw[:1] == '"':
        out: list[str] = []
        i = 1
        while i < len(raw):
            ch = raw[i]
            if ch == "\\" and i + 1 < len(raw):
                nxt = raw[i + 1]
                out.append(_ESCAPES.get(nxt, "\\" + nxt))
                i += 2
                continue
            if ch == '"':
                break
            out.append(ch)
            i += 1
        return "".join(out)
    comment = re.search(r"\s#", raw)
    if comment:
        raw = raw[: comment.start()]
    return raw.strip()


def parse_env_file(text: str) -> dict[str, str]:
    """The text of a `.tidepool.env` file → its KEY → VALUE pairs (later lines win)."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        m = _LINE.fullmatch(line)
        if m is None:
            continue
        values[m.group(1)] = _unquote(m.group(2))
    return values


def find_env_file(start: Path | None = None) -> Path | None:
    """The nearest `.tidepool.env` in `start` (default: the cwd) or a parent, or None."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / ENV_FILE_NAME
        if candidate.is_file():
            return candidate
    return None


def load_settings(
    env: Mapping[str, str] | None = None,
    env_file: Path | bool | None = True,
) -> LokiSettings:
    """Settings from `env` (default `os.environ`) over `.tidepool.env`.

    `env_file=True` looks the file up from the cwd, a Path reads that file,
    and False/None reads no file. An unreadable file is ignored.
    """
    environ = os.environ if env is None else env
    file_values: dict[str, str] = {}
    path = find_env_file() if env_file is True else (env_file or None)
    if isinstance(path, Path):
        try:
            file_values = parse_env_file(path.read_text(encoding="utf-8", errors="replace"))
        except OSError:
            file_values = {}

    def get(key: str) -> tuple[str | None, str]:
        value = environ.get(key)
        if value:
            return value, "environment"
        value = file_values.get(key)
        if value:
            return value, str(path)
        return None, "default"

    url, url_from = get("GRAFANA_LOKI_URL")
    selector, selector_from = get("GRAFANA_LOKI_SELECTOR")
    if selector is not None:
        selector = check_selector(selector, selector_from)
    return LokiSettings(
        selector=selector or DEFAULT_SELECTOR,
        url=url or DEFAULT_LOKI_URL,
        user=get("GRAFANA_LOKI_USER")[0],
        token=get("GRAFANA_LOKI_TOKEN")[0],
        bearer=get("GRAFANA_LOKI_BEARER")[0],
        org_id=get("GRAFANA_LOKI_ORG_ID")[0],
        url_from=url_from,
    )
