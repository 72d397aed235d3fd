"""A GitHub REST API stand-in on loopback: pull requests, labels, reviewers, over real HTTP.

It knows one repository (`owner/name`) whose git remote is a local bare
repository, and answers the way GitHub does for the calls a sleeptime PR makes:

    GET  /user                                      200 (the token's user)
    GET  /repos/{o}/{r}                             200 (with `permissions`) | 404 other repos
    POST /repos/{o}/{r}/pulls                       201 | 422 head/base missing, PR exists
    GET  /repos/{o}/{r}/pulls[?head=o:branch]       200
    GET  /repos/{o}/{r}/pulls/{n}                   200 | 404
    POST /repos/{o}/{r}/issues/{n}/labels           200 (the issue's labels)
    POST /repos/{o}/{r}/pulls/{n}/requested_reviewers  201

and what the loop's ledger reads and tests use to act as reviewers:

    GET   /repos/{o}/{r}/pulls?state=open|closed|all&head=&per_page=&page=
                                                    200, paginated with `Link` headers
    PUT   /repos/{o}/{r}/pulls/{n}/merge            200 (a real merge commit on the base
                                                    in the bare remote; `merge_method`
                                                    squash: one commit, rebase: the PR's
                                                    commits re-made) | 405 | 404 | 422
    PATCH /repos/{o}/{r}/pulls/{n}  {"state": "closed"} or {"body": "..."}  200
    GET   /user                                     200 (the token's user: `login`)
    GET   /repos/{o}/{r}/issues/{n}/comments        200, paginated
    POST  /repos/{o}/{r}/issues/{n}/comments        201

Set `now` to date merges and comments (merged_at, the merge commit).

Every request needs `Authorization: Bearer TOKEN` (or `token TOKEN`), else 401
"Bad credentials". Requests are recorded (method, path, headers, JSON body) so
tests can check what the client sent.

    with GitHubStandIn(bare_repo, "acme/dm-graph", token="t0k") as gh:
        os.environ["GITHUB_API_URL"] = gh.url
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["GitHubStandIn", "Recorded"]


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class _State:
    pulls: dict[int, dict[str, Any]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    next_number: int = 1
    lock: threading.Lock = field(default_factory=threading.Lock)


class GitHubStandIn:
    def __init__(
        self, remote: Path, repository: str, token: str = "test-token",
        html_base: str = "https://github.com", fail_with: int | None = None,
        push: bool = True, login: str = "sleeptime-bot",
    ) -> None:
        self.remote = remote
        self.repository = repository
        self.token = token
        self.html_base = html_base
        self.fail_with = fail_with  # answer every call with this status (outage tests)
        self.push = push  # what GET /repos/{o}/{r} says the token may do
        self.login = login
        self.now: datetime | None = None  # the clock of merges and comments (None: real time)
        #: when set: POST /pulls creates the PR, then answers only once this is set (a client
        #: killed while it waits has opened a PR it never heard of)
        self.hold_create: threading.Event | None = None
        self.comments: dict[int, list[dict[str, Any]]] = {}
        self.state = _State()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                stand_in._handle(self, "GET")

            def do_POST(self) -> None:
                stand_in._handle(self, "POST")

            def do_PUT(self) -> None:
                stand_in._handle(self, "PUT")

            def do_PATCH(self) -> None:
                stand_in._handle(self, "PATCH")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def requests(self) -> list[Recorded]:
        return list(self.state.requests)

    @property
    def pulls(self) -> dict[int, dict[str, Any]]:
        return self.state.pulls

    def __enter__(self) -> GitHubStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # ------------------------------------------------------------------ protocol

    def _branch_sha(self, branch: str) -> str | None:
        proc = subprocess.run(
            ["git", "-C", str(self.remote), "rev-parse", "--verify", "--quiet",
             f"refs/heads/{branch}^{{commit}}"],
            capture_output=True, text=True, check=False,
        )
        return proc.stdout.strip() or None

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            body = "<invalid json>"
        parts = urlsplit(h.path)
        with self.state.lock:
            self.state.requests.append(
                Recorded(method, h.path, {k.lower(): v for k, v in h.headers.items()}, body)
            )
        if self.fail_with is not None:
            return self._send(h, self.fail_with, {"message": "Server Error"})
        auth = h.headers.get("Authorization", "")
        if auth not in (f"Bearer {self.token}", f"token {self.token}"):
            return self._send(h, 401, {"message": "Bad credentials",
                                       "documentation_url": "https://docs.github.com/rest"})
        if body == "<invalid json>":
            return self._send(h, 400, {"message": "Problems parsing JSON"})
        prefix = f"/repos/{self.repository}"
        if method == "GET" and parts.path == "/user":
            return self._send(h, 200, {"login": self.login, "id": 1, "type": "User"})
        if method == "GET" and parts.path.rstrip("/") == prefix:
            owner, name = self.repository.split("/", 1)
            return self._send(h, 200, {
                "id": 1, "name": name, "full_name": self.repository,
                "owner": {"login": owner}, "private": True, "default_branch": "main",
                "html_url": f"{self.html_base}/{self.repository}",
                "permissions": {"admin": False, "maintain": False, "push": self.push,
                                "triage": True, "pull": True},
            })
        if not parts.path.startswith(prefix + "/"):
            return self._send(h, 404, {"message": "Not Found"})
        route = parts.path[len(prefix):]
        with self.state.lock:
            if self._loop_route(h, method, route, parts.query, body):
                return None
            if method == "POST" and route == "/pulls":
                return self._create_pull(h, body)
            if method == "GET" and route == "/pulls":
                query = parse_qs(parts.query)
                head = query.get("head", [""])[0].split(":", 1)[-1]
                found = [p for p in self.state.pulls.values()
                         if not head or p["head"]["ref"] == head]
                return self._send(h, 200, found)
            match = re.fullmatch(r"/pulls/(\d+)", route)
            if method == "GET" and match:
                pull = self.state.pulls.get(int(match.group(1)))
                return self._send(h, 200, pull) if pull else self._send(h, 404,
                                                                        {"message": "Not Found"})
            match = re.fullmatch(r"/issues/(\d+)/labels", route)
            if method == "POST" and match:
                return self._add_labels(h, int(match.group(1)), body)
            match = re.fullmatch(r"/pulls/(\d+)/requested_reviewers", route)
            if method == "POST" and match:
                return self._request_reviewers(h, int(match.group(1)), body)
        return self._send(h, 404, {"message": "Not Found"})

    def _invalid(self, h: BaseHTTPRequestHandler, field_name: str, message: str) -> None:
        self._send(h, 422, {
            "message": "Validation Failed",
            "errors": [{"resource": "PullRequest", "field": field_name, "code": "invalid",
                        "message": message}],
        })

    def _create_pull(self, h: BaseHTTPRequestHandler, body: Any) -> None:
        if not isinstance(body, dict):
            return self._send(h, 400, {"message": "Problems parsing JSON"})
        for key in ("title", "head", "base"):
            if not isinstance(body.get(key), str) or not body[key].strip():
                return self._invalid(h, key, f"{key} is missing")
        if "body" in body and not isinstance(body["body"], str | None):
            return self._invalid(h, "body", "body must be a string")
        if "draft" in body and not isinstance(body["draft"], bool):
            return self._invalid(h, "draft", "draft must be a boolean")
        head, base = body["head"].split(":", 1)[-1], body["base"]
        head_sha = self._branch_sha(head)
        if head_sha is None:
            return self._invalid(h, "head", f"head branch {head} does not exist")
        if self._branch_sha(base) is None:
            return self._invalid(h, "base", f"base branch {base} does not exist")
        if head == base:
            return self._invalid(h, "head", "head and base must be different branches")
        owner = self.repository.split("/", 1)[0]
        for pull in self.state.pulls.values():
            if pull["head"]["ref"] == head and pull["state"] == "open":
                return self._send(h, 422, {
                    "message": "Validation Failed",
                    "errors": [{"resource": "PullRequest", "code": "custom",
                                "message": f"A pull request already exists for {owner}:{head}."}],
                })
        number = self.state.next_number
        self.state.next_number += 1
        now = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
        pull = {
            "number": number,
            "url": f"{self.url}/repos/{self.repository}/pulls/{number}",
            "html_url": f"{self.html_base}/{self.repository}/pull/{number}",
            "state": "open",
            "draft": bool(body.get("draft", False)),
            "merged": False,
            "title": body["title"],
            "body": body.get("body"),
            "head": {"ref": head, "sha": head_sha},
            "base": {"ref": base, "sha": self._branch_sha(base)},
            "labels": [],
            "requested_reviewers": [],
            "created_at": now,
        }
        self.state.pulls[number] = pull
        if self.hold_create is not None:
            self.hold_create.wait(60)
        self._send(h, 201, pull)

    def _add_labels(self, h: BaseHTTPRequestHandler, number: int, body: Any) -> None:
        pull = self.state.pulls.get(number)
        if pull is None:
            return self._send(h, 404, {"message": "Not Found"})
        labels = body.get("labels") if isinstance(body, dict) else body
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            return self._send(h, 422, {"message": "Invalid request: labels must be strings"})
        names = [label["name"] for label in pull["labels"]]
        for name in labels:
            if name not in names:
                names.append(name)
        pull["labels"] = [{"name": n, "color": "ededed", "default": False} for n in names]
        self._send(h, 200, pull["labels"])

    def _request_reviewers(self, h: BaseHTTPRequestHandler, number: int, body: Any) -> None:
        pull = self.state.pulls.get(number)
        if pull is None:
            return self._send(h, 404, {"message": "Not Found"})
        reviewers = body.get("reviewers") if isinstance(body, dict) else None
        if not isinstance(reviewers, list) or not all(isinstance(x, str) for x in reviewers):
            return self._send(h, 422, {"message": "Invalid request: reviewers must be strings"})
        pull["requested_reviewers"] = [{"login": r} for r in reviewers]
        self._send(h, 201, pull)

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json; charset=utf-8")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    # ------------------------------------------------------------ the loop's endpoints

    def _clock(self) -> datetime:
        return (self.now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)

    def _stamp(self) -> str:
        return self._clock().isoformat().replace("+00:00", "Z")

    def _loop_route(self, h: BaseHTTPRequestHandler, method: str, route: str, query: str,
                    body: Any) -> bool:
        """The list, merge, close and comment endpoints; False when `route` is not one."""
        q = parse_qs(query)
        if method == "GET" and route == "/pulls":
            state = q.get("state", ["open"])[0]
            head = q.get("head", [""])[0].split(":", 1)[-1]
            found = [self._full(p) for _, p in sorted(self.state.pulls.items())
                     if (state == "all" or p["state"] == state)
                     and (not head or p["head"]["ref"] == head)]
            self._send_page(h, found, q, route)
            return True
        match = re.fullmatch(r"/pulls/(\d+)/merge", route)
        if method == "PUT" and match:
            self._merge(h, int(match.group(1)), body)
            return True
        match = re.fullmatch(r"/pulls/(\d+)", route)
        if method == "PATCH" and match:
            pull = self.state.pulls.get(int(match.group(1)))
            if pull is None:
                self._send(h, 404, {"message": "Not Found"})
            elif isinstance(body, dict) and isinstance(body.get("body"), str):
                pull["body"] = body["body"]  # a person edits the description
                self._send(h, 200, self._full(pull))
            elif isinstance(body, dict) and body.get("state") in ("open", "closed"):
                pull["state"] = body["state"]
                pull["closed_at"] = self._stamp() if body["state"] == "closed" else None
                self._send(h, 200, self._full(pull))
            else:
                self._invalid(h, "state", "state must be open or closed")
            return True
        if method == "GET" and match:
            pull = self.state.pulls.get(int(match.group(1)))
            if pull is None:
                self._send(h, 404, {"message": "Not Found"})
            else:
                self._send(h, 200, self._full(pull))
            return True
        match = re.fullmatch(r"/issues/(\d+)/comments", route)
        if match:
            number = int(match.group(1))
            if number not in self.state.pulls:
                self._send(h, 404, {"message": "Not Found"})
            elif method == "GET":
                self._send_page(h, self.comments.get(number, []), q, route)
            elif method == "POST":
                if not isinstance(body, dict) or not isinstance(body.get("body"), str):
                    self._invalid(h, "body", "body is missing")
                    return True
                comments = self.comments.setdefault(number, [])
                cid = sum(len(c) for c in self.comments.values()) + 1
                comment = {
                    "id": cid, "body": body["body"],
                    "user": {"login": self.login, "type": "User"}, "author_association": "OWNER",
                    "created_at": self._stamp(), "updated_at": self._stamp(),
                    "html_url": f"{self.html_base}/{self.repository}/pull/{number}"
                                f"#issuecomment-{cid}",
                }
                comments.append(comment)
                self._send(h, 201, comment)
            else:
                return False
            return True
        return False

    def _full(self, pull: dict[str, Any]) -> dict[str, Any]:
        return {"merged_at": None, "closed_at": None, "merge_commit_sha": None,
                "user": {"login": self.login, "type": "User"}, "author_association": "OWNER",
                **pull}

    def _send_page(self, h: BaseHTTPRequestHandler, items: list[Any], q: dict[str, list[str]],
                   route: str) -> None:
        try:
            per_page = max(1, min(100, int(q.get("per_page", ["30"])[0])))
            page = max(1, int(q.get("page", ["1"])[0]))
        except ValueError:
            return self._send(h, 400, {"message": "Invalid page"})
        last = max(1, -(-len(items) // per_page))
        chunk = items[(page - 1) * per_page: page * per_page]
        keep = {k: v[0] for k, v in q.items() if k not in ("page",)}

        def link(n: int, rel: str) -> str:
            from urllib.parse import urlencode

            query = urlencode({**keep, "page": n})
            return f'<{self.url}/repos/{self.repository}{route}?{query}>; rel="{rel}"'

        links = []
        if page < last:
            links += [link(page + 1, "next"), link(last, "last")]
        if page > 1:
            links += [link(1, "first"), link(page - 1, "prev")]
        data = json.dumps(chunk).encode()
        h.send_response(200)
        h.send_header("Content-Type", "application/json; charset=utf-8")
        h.send_header("Content-Length", str(len(data)))
        if links:
            h.send_header("Link", ", ".join(links))
        h.end_headers()
        h.wfile.write(data)

    def _git(self, *args: str, env: dict[str, str] | None = None) -> str:
        import os

        proc = subprocess.run(["git", "-C", str(self.remote), *args], capture_output=True,
                              text=True, check=False, env={**os.environ, **(env or {})})
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr.strip() or proc.stdout.strip())
        return proc.stdout.strip()

    def _pick(self, onto: str, commit: str) -> str:
        """The tree of `commit`'s change applied to `onto` (a cherry-pick in the bare remote)."""
        import os
        import tempfile

        patch = self._git("diff", "--binary", f"{commit}^", commit) + "\n"
        with tempfile.TemporaryDirectory() as scratch:
            env = {"GIT_INDEX_FILE": os.path.join(scratch, "index")}
            self._git("read-tree", onto, env=env)
            proc = subprocess.run(["git", "-C", str(self.remote), "apply", "--cached", "-"],
                                  input=patch, capture_output=True, text=True, check=False,
                                  env={**os.environ, **env})
            if proc.returncode != 0:
                raise RuntimeError(proc.stderr.strip())
            return self._git("write-tree", env=env)

    def _merge(self, h: BaseHTTPRequestHandler, number: int, body: Any) -> None:
        pull = self.state.pulls.get(number)
        if pull is None:
            return self._send(h, 404, {"message": "Not Found"})
        if pull["state"] != "open":
            return self._send(h, 405, {"message": "Pull Request is not mergeable"})
        base, head = pull["base"]["ref"], pull["head"]["ref"]
        base_sha, head_sha = self._branch_sha(base), self._branch_sha(head)
        if base_sha is None or head_sha is None:
            return self._send(h, 405, {"message": "Pull Request is not mergeable"})
        stamp = self._clock().strftime("%Y-%m-%dT%H:%M:%S+0000")
        env = {"GIT_AUTHOR_NAME": "GitHub", "GIT_AUTHOR_EMAIL": "noreply@github.com",
               "GIT_COMMITTER_NAME": "GitHub", "GIT_COMMITTER_EMAIL": "noreply@github.com",
               "GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp}
        title = (body or {}).get("commit_title") if isinstance(body, dict) else None
        method = (body or {}).get("merge_method", "merge") if isinstance(body, dict) else "merge"
        if method not in ("merge", "squash", "rebase"):
            return self._invalid(h, "merge_method", "merge_method must be merge, squash or rebase")
        try:
            tree = self._git("merge-tree", "--write-tree", base_sha, head_sha).split()[0]
            if method == "merge":
                message = title or f"Merge pull request #{number} from {self.repository}/{head}"
                sha = self._git("commit-tree", tree, "-p", base_sha, "-p", head_sha, "-m",
                                message, env=env)
            elif method == "squash":  # one new commit on the base, the PR's changes in it
                message = title or f"{pull['title']} (#{number})"
                sha = self._git("commit-tree", tree, "-p", base_sha, "-m", message, env=env)
            else:  # rebase: each PR commit re-made on the base, keeping its message and author
                sha = base_sha
                for commit in self._git("rev-list", "--reverse", f"{base_sha}..{head_sha}").split():
                    picked = self._pick(sha, commit)
                    message = self._git("log", "-1", "--format=%B", commit)
                    sha = self._git("commit-tree", picked, "-p", sha, "-m", message,
                                    env={k: v for k, v in env.items() if "AUTHOR" not in k})
            self._git("update-ref", f"refs/heads/{base}", sha, base_sha)
        except RuntimeError:
            return self._send(h, 405, {"message": "Pull Request is not mergeable"})
        pull.update(state="closed", merged=True, merged_at=self._stamp(),
                    closed_at=self._stamp(), merge_commit_sha=sha)
        self._send(h, 200, {"sha": sha, "merged": True,
                            "message": "Pull Request successfully merged"})
