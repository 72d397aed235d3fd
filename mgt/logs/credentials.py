"""A Loki URL with `user:password@` in it → the URL without them, the credentials kept in memory.

A run records its inputs (run.json, events, prompts), so a source URL must not
carry a secret into them: `remember_credentials` returns the URL with its
userinfo removed and keeps the credentials in this process only, and
`open_source` uses them for a URL that has none of its own when the
environment names no credentials. A resumed run (a new process) no longer has
them: it needs GRAFANA_LOKI_USER / GRAFANA_LOKI_TOKEN then.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit, urlunsplit

__all__ = ["redact_url", "remember_credentials", "remembered_credentials"]

_REMEMBERED: dict[str, tuple[str, str | None]] = {}


def _split(url: str) -> tuple[str, str | None, str | None]:
    """(url without userinfo, user, password); the url unchanged when it has none."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port
    except ValueError:  # a malformed port: nothing we can safely rebuild; hide everything
        head, sep, rest = url.partition("://")
        return (head + sep + rest.rpartition("@")[2] if "@" in rest else url), None, None
    if parts.username is None and parts.password is None and "@" not in parts.netloc:
        return parts.scheme + url[len(parts.scheme):], None, None  # `HTTPS://` → `https://`
    netloc = host or ""
    if ":" in netloc:  # an IPv6 address
        netloc = f"[{netloc}]"
    if port is not None:
        netloc += f":{port}"
    clean = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    return clean, user, password


def redact_url(url: str) -> str:
    """`https://u:p@host/x` → `https://host/x` (scheme lower-cased); other text unchanged."""
    if not url.lower().startswith(("http://", "https://")):
        return url
    return _split(url)[0]


def remember_credentials(url: str) -> str:
    """The URL without userinfo; its credentials are remembered for `remembered_credentials`."""
    if not url.lower().startswith(("http://", "https://")):
        return url
    clean, user, password = _split(url)
    if user or password:  # `https://:TOKEN@host`: a token alone, sent as a bearer token
        _REMEMBERED[clean.rstrip("/")] = (user or "", password)
    return clean


def remembered_credentials(url: str) -> tuple[str, str | None] | None:
    """(user, password) given with this URL earlier in this process, if any."""
    return _REMEMBERED.get(url.rstrip("/"))
