"""A pull request to open → GitHub REST API calls (httpx): create, label, request reviewers.

Configuration comes from the environment: the token from `GITHUB_TOKEN` (else
`GH_TOKEN`), the API base from `GITHUB_API_URL` (default
`https://api.github.com`; GitHub Enterprise and the tests' stand-in set it).
Every httpx failure and every non-2xx answer becomes an `EvolveError` that
quotes GitHub's own `message` and `errors`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from mgt.errors import EvolveError

__all__ = [
    "DEFAULT_API_URL", "GitHubClient", "GitHubError", "parse_github_remote", "token_from_env",
]

DEFAULT_API_URL = "https://api.github.com"
_REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_REMOTE = re.compile(r"github\.com[:/]+([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+?)(?:\.git)?/?$")


class GitHubError(EvolveError):
    """GitHub answered with an error status (`status`: 401, 404, 422...)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def token_from_env(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    token = env.get("GITHUB_TOKEN") or env.get("GH_TOKEN")
    if not token:
        raise EvolveError(
            "forge github needs a token: set GITHUB_TOKEN (or GH_TOKEN) to a token that may "
            "push branches and open pull requests"
        )
    return token


def parse_github_remote(url: str) -> str | None:
    """`git@github.com:owner/name.git`, `https://github.com/owner/name` → "owner/name"."""
    match = _REMOTE.search(url.strip())
    return f"{match.group(1)}/{match.group(2)}" if match else None


class GitHubClient:
    """The few REST calls a sleeptime PR needs, against one repository."""

    def __init__(
        self,
        repository: str,
        token: str,
        api_url: str | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30.0,
    ) -> None:
        if not _REPO.match(repository):
            raise EvolveError(f"'{repository}' is not a GitHub repository name (owner/name)")
        self.repository = repository
        self.api_url = (api_url or os.environ.get("GITHUB_API_URL") or DEFAULT_API_URL).rstrip("/")
        self._client = httpx.Client(
            base_url=self.api_url,
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28",
                "User-Agent": "mgt-sleeptime",
            },
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> GitHubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        url = f"/repos/{self.repository}{path}"
        try:
            response = self._client.request(method, url, json=body)
        except httpx.TimeoutException:
            raise EvolveError(f"GitHub API at {self.api_url} timed out ({method} {url})") from None
        except httpx.HTTPError as e:
            raise EvolveError(
                f"GitHub API at {self.api_url} is unreachable ({method} {url}): {e}"
            ) from None
        if response.status_code >= 400:
            raise GitHubError(
                f"GitHub API {method} {url} answered {response.status_code}: "
                f"{_explain(response)}",
                response.status_code,
            )
        try:
            return response.json() if response.content else None
        except ValueError:
            raise EvolveError(f"GitHub API {method} {url} answered with non-JSON content") from None

    def get_repository(self) -> Any:
        """GET /repos/{owner}/{name}: the repository as the token sees it (404 if it cannot)."""
        return self._call("GET", "")

    def create_pull(self, *, head: str, base: str, title: str, body: str, draft: bool) -> Any:
        pull = self._call(
            "POST", "/pulls", {"title": title, "head": head, "base": base, "body": body,
                               "draft": draft, "maintainer_can_modify": True},
        )
        if not isinstance(pull, Mapping) or not isinstance(pull.get("number"), int):
            raise EvolveError("GitHub API answered POST /pulls without a pull request number")
        return pull

    def add_labels(self, number: int, labels: Sequence[str]) -> Any:
        return self._call("POST", f"/issues/{number}/labels", {"labels": list(labels)})

    def request_reviewers(self, number: int, reviewers: Sequence[str]) -> Any:
        return self._call(
            "POST", f"/pulls/{number}/requested_reviewers", {"reviewers": list(reviewers)}
        )

    def list_pulls(self, head: str | None = None) -> Any:
        owner = self.repository.split("/", 1)[0]
        query = f"?state=open&head={owner}:{head}" if head else "?state=open"
        return self._call("GET", f"/pulls{query}")


def _explain(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason_phrase
    if not isinstance(data, Mapping):
        return str(data)[:300]
    message = str(data.get("message", response.reason_phrase))
    details = []
    for item in data.get("errors", []) or []:
        if isinstance(item, Mapping):
            details.append(
                str(item.get("message") or
                    " ".join(str(item.get(k)) for k in ("resource", "field", "code") if k in item))
            )
        else:
            details.append(str(item))
    return message + (f" ({'; '.join(details)})" if details else "")
