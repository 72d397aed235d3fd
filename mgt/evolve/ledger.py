"""A target repository + forge → its sleeptime PRs (state, metadata, merge time, verdict).

The forge is the loop's memory; nothing here depends on a local cache:

- `local`: the PR records under `<git dir>/mgt/prs/<n>.json` that open-pr
  writes. A record's state comes from the repository itself: **merged** when
  its commit is reachable from the base branch (the merge time is the
  committer time of the merge commit: the first commit on the base branch's
  first-parent line that contains it; after a fast-forward, when the base
  branch's reflog first shows it, else the commit's own time), **closed**
  when its branch was deleted without merging (or the record says
  `"state": "closed"`), else **open**. Verdicts and revert
  PR numbers are written back into the record (an atomic rewrite).
- `github`: `GET /repos/{o}/{r}/pulls?state=all` (every page, following
  `Link: rel="next"`); a pull request is a sleeptime PR when its body carries
  a metadata block (see `mgt.evolve.metadata`) or its head branch starts with
  `sleeptime/`, and its author is the token's own user (`GET /user`; when
  GitHub does not say: a bot, or an owner, member or collaborator). merged =
  `merged_at` set; the verdict is the newest verdict block among the PR's
  issue comments by that same kind of author.

Records, bodies and comments are hostile input: a malformed one is skipped or
read as far as it is well-formed, never a crash.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from mgt.errors import EvolveError
from mgt.evolve.git import GitFailure, git, git_dir, rev_parse
from mgt.evolve.github import GitHubClient
from mgt.evolve.metadata import parse_blocks, render_block, sanitize

__all__ = [
    "LedgerClient",
    "LedgerPR",
    "local_records_dir",
    "parse_time",
    "read_github",
    "read_ledger",
    "read_local",
    "record_local",
    "verdict_comment",
]

MAX_RECORD_BYTES = 4_000_000
MAX_PAGES = 50


@dataclass
class LedgerPR:
    """One sleeptime PR as the forge shows it."""

    number: int
    forge: str
    state: str  # open | merged | closed
    title: str
    url: str
    head: str
    base: str
    commit_sha: str | None = None
    merge_sha: str | None = None  # the commit on the base branch that brought the change in
    merged_at: datetime | None = None
    meta: dict[str, Any] | None = None  # the PR's own block (kind pr or revert)
    verdict: dict[str, Any] | None = None  # the newest verdict block
    revert_pr: int | None = None  # the revert PR filed for it, if any
    files_changed: list[str] = field(default_factory=list)
    patterns_addressed: list[str] = field(default_factory=list)
    record_path: Path | None = None

    @property
    def kind(self) -> str:
        return str(self.meta.get("kind", "pr")) if self.meta else "pr"

    @property
    def patterns(self) -> list[dict[str, Any]]:
        """The addressed patterns' metadata (ids only for a PR filed without a block)."""
        if self.meta is not None:  # the block governs, even when edited down to nothing
            return list(self.meta.get("patterns") or [])
        return [{"id": p, "type": "", "key": {}, "fingerprint": "", "figures": {}}
                for p in self.patterns_addressed]

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "forge": self.forge,
            "kind": self.kind,
            "state": self.state,
            "title": self.title,
            "url": self.url,
            "head": self.head,
            "base": self.base,
            "commit_sha": self.commit_sha,
            "merge_sha": self.merge_sha,
            "merged_at": _iso(self.merged_at),
            "patterns": [p["id"] for p in self.patterns],
            "fingerprints": [p["fingerprint"] for p in self.patterns if p.get("fingerprint")],
            "verdict": self.verdict,
            "revert_pr": self.revert_pr,
            "reverts": self.meta.get("reverts") if self.meta else None,
        }


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_time(value: Any) -> datetime | None:
    """An ISO-8601 time (`2026-01-02T03:04:05Z`) → an aware datetime; None when it is not one."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _own_block(body: Any) -> dict[str, Any] | None:
    """The PR's own metadata block (kind pr or revert) in its body; the first one wins."""
    for block in parse_blocks(body):
        if block["kind"] in ("pr", "revert"):
            return block
    return None


def _text(value: Any, limit: int = 500) -> str:
    return value[:limit] if isinstance(value, str) else ""


# ------------------------------------------------------------------------ local forge


def local_records_dir(repo: Path) -> Path:
    return git_dir(repo) / "mgt" / "prs"


def _committer_time(repo: Path, sha: str) -> datetime | None:
    try:
        out = git(repo, "show", "-s", "--format=%ct", sha).strip()
        return datetime.fromtimestamp(int(out), UTC)
    except (GitFailure, ValueError, OverflowError, OSError):
        return None


def _fast_forward_time(repo: Path, sha: str, base: str) -> datetime | None:
    """When `base` first pointed at a commit containing `sha`, from its reflog (None: unknown)."""
    try:
        out = git(repo, "reflog", "show", "--date=unix", "--format=%H %gd",
                  f"refs/heads/{base}", "--")
    except GitFailure:
        return None
    found: datetime | None = None
    for line in out.splitlines()[:500]:  # newest first: keep the oldest that contains sha
        commit, _, selector = line.partition(" ")
        match = re.search(r"@\{(\d+)\}", selector)
        if match is None:
            continue
        try:
            git(repo, "merge-base", "--is-ancestor", sha, commit)
        except GitFailure:
            break
        found = datetime.fromtimestamp(int(match.group(1)), UTC)
    return found


MAX_SQUASH_CANDIDATES = 2000


def _patch_ids(repo: Path, commits: list[str],
               cache: dict[str, str | None] | None = None) -> list[tuple[str, str]]:
    """(commit, patch id) of each commit's diff against its first parent, in `commits` order;
    `cache` keeps them across the PRs of one read (None: a commit with no diff)."""
    cache = {} if cache is None else cache
    missing = [c for c in commits if c not in cache]
    if missing:
        try:
            patches = git(repo, "diff-tree", "-p", "-m", "--first-parent", "--no-color",
                          "--stdin", input_text="\n".join(missing) + "\n", timeout=300)
            out = git(repo, "patch-id", "--stable", input_text=patches, timeout=300)
        except (GitFailure, ValueError):  # ValueError: a diff that is not text
            out = ""
        cache.update(dict.fromkeys(missing))
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1] in cache:
                cache[parts[1]] = parts[0]
    return [(c, pid) for c in commits if (pid := cache.get(c)) is not None]


def _equivalent_commit(repo: Path, sha: str, tip: str, head: str, claimed: set[str],
                       cache: dict[str, str | None]) -> str | None:
    """A squash or rebase merge: the oldest commit on the base since the PR forked (merges
    left out) whose change is the PR's (same `git patch-id`: of the PR's commit, or of the
    whole branch when commits were added to it) and that no other PR accounts for."""
    try:
        fork = git(repo, "merge-base", sha, tip).strip()
    except GitFailure:
        return None
    wanted = {pid for _, pid in _patch_ids(repo, [sha])}
    branch_tip = rev_parse(repo, f"refs/heads/{head}") if head else None
    if branch_tip and branch_tip != sha:
        try:
            git(repo, "merge-base", "--is-ancestor", sha, branch_tip)
            whole = git(repo, "diff", "--no-color", fork, branch_tip, timeout=300)
            out = git(repo, "patch-id", "--stable", input_text=whole).split()
            if out:
                wanted.add(out[0])
        except (GitFailure, ValueError):
            pass
    if not wanted:
        return None
    line = git(repo, "rev-list", "--no-merges", "--reverse", f"{fork}..{tip}").split()
    for commit, pid in _patch_ids(repo, line[-MAX_SQUASH_CANDIDATES:], cache):
        if pid in wanted and commit not in claimed:
            return commit
    return None


def _merge_commit(repo: Path, sha: str, base: str) -> str | None:
    """The first commit on `base`'s first-parent line that contains `sha` (None: not merged)."""
    tip = rev_parse(repo, f"refs/heads/{base}")
    if tip is None or rev_parse(repo, sha) != sha:
        return None
    try:
        git(repo, "merge-base", "--is-ancestor", sha, tip)
    except GitFailure:
        return None
    line = git(repo, "rev-list", "--first-parent", tip).split()
    if sha in line:
        return sha  # fast-forwarded (or committed straight onto the base)
    after = git(repo, "rev-list", "--first-parent", "--ancestry-path", "--reverse",
                f"{sha}..{tip}").split()
    return after[0] if after else None


def _squashed(repo: Path, sha: str, base: str, head: str, claimed: set[str],
              cache: dict[str, str | None]) -> tuple[str, str] | None:
    """(the PR's change on the base, its merge commit) after a squash or rebase merge."""
    tip = rev_parse(repo, f"refs/heads/{base}")
    if tip is None or rev_parse(repo, sha) != sha:
        return None
    found = _equivalent_commit(repo, sha, tip, head, claimed, cache)
    merge = _merge_commit(repo, found, base) if found else None
    return (found, merge) if found and merge else None


def _merged_at(repo: Path, merge: str, sha: str, base: str) -> datetime | None:
    """The merge commit's committer time; after a fast-forward, when the base moved (reflog)."""
    if merge == sha:
        return _fast_forward_time(repo, sha, base) or _committer_time(repo, sha)
    return _committer_time(repo, merge)


def _read_record(path: Path) -> dict[str, Any] | None:
    try:
        if path.stat().st_size > MAX_RECORD_BYTES:
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def read_local(repo: Path) -> list[LedgerPR]:
    """The PR records of `repo`'s git directory, oldest first, with states from the repository."""
    directory = local_records_dir(repo)
    if not directory.is_dir():
        return []
    prs: list[LedgerPR] = []
    numbered = sorted((int(p.stem), p) for p in directory.glob("*.json") if p.stem.isdigit())
    for number, path in numbered:
        record = _read_record(path)
        if record is None:
            continue
        head, base = _text(record.get("head"), 300), _text(record.get("base"), 300) or "main"
        sha = record.get("commit_sha")
        sha = sha if isinstance(sha, str) and re.fullmatch(r"[0-9a-f]{40}", sha) else None
        merge = _merge_commit(repo, sha, base) if sha else None
        verdict = sanitize(record.get("mgt_verdict")) if record.get("mgt_verdict") else None
        revert = record.get("mgt_revert_pr")
        files = record.get("files_changed")
        addressed = record.get("patterns_addressed")
        prs.append(LedgerPR(
            number=number, forge="local", state="merged" if merge else "open",
            title=_text(record.get("title")), url=path.as_uri(), head=head, base=base,
            commit_sha=sha, merge_sha=merge,
            merged_at=_merged_at(repo, merge, sha, base) if merge and sha else None,
            meta=_own_block(record.get("body")),
            verdict=verdict if verdict and verdict.get("kind") == "verdict" else None,
            revert_pr=revert if isinstance(revert, int) and not isinstance(revert, bool) else None,
            files_changed=[f[:500] for f in files if isinstance(f, str)][:200]
            if isinstance(files, list) else [],
            patterns_addressed=[p[:200] for p in addressed if isinstance(p, str)][:50]
            if isinstance(addressed, list) else [],
            record_path=path,
        ))
        if record.get("state") == "closed":
            prs[-1].state = "closed"  # unless merged after all: settled below
    # Squash and rebase merges leave the PR's commit off the base: a commit there making the
    # same change stands for it, each such commit for one PR only (oldest PR first), and
    # never a commit another PR's own history brought in.
    claimed = {pr.commit_sha for pr in prs if pr.merge_sha and pr.commit_sha}
    patch_ids: dict[str, str | None] = {}  # the base's commits, computed once per read
    for pr in prs:
        if pr.merge_sha is None and pr.commit_sha:
            found = _squashed(repo, pr.commit_sha, pr.base, pr.head, claimed, patch_ids)
            if found is not None:
                claimed.add(found[0])
                pr.merge_sha = found[1]
                pr.merged_at = _merged_at(repo, found[1], found[0], pr.base)
        if pr.merge_sha is not None:
            pr.state = "merged"
        elif pr.state != "closed" and pr.head and rev_parse(repo, f"refs/heads/{pr.head}") is None:
            pr.state = "closed"
    reverts = {pr.meta.get("reverts"): pr.number for pr in prs
               if pr.meta and pr.meta.get("kind") == "revert"}
    for pr in prs:
        pr.revert_pr = pr.revert_pr or reverts.get(pr.number)
    return prs


def record_local(pr: LedgerPR, **fields: Any) -> None:
    """Write `fields` into the PR's record: a temporary file renamed over it (atomic)."""
    path = pr.record_path
    if path is None:
        raise EvolveError(f"PR #{pr.number} has no local record to update")
    record = _read_record(path)
    if record is None:
        raise EvolveError(f"the PR record {path} is not readable JSON; not updating it")
    record.update(fields)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        with suppress(OSError):
            os.unlink(tmp)
        raise EvolveError(f"cannot update the PR record {path}: {e}") from None


# ------------------------------------------------------------------------ GitHub


_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


class LedgerClient(GitHubClient):
    """GitHubClient plus what the ledger reads and writes: every PR, comments, merges."""

    def _page(self, url: str) -> tuple[Any, str | None]:
        try:
            response = self._client.get(url)
        except httpx.HTTPError as e:
            raise EvolveError(f"GitHub API at {self.api_url} is unreachable (GET {url}): {e}") \
                from None
        if response.status_code >= 400:
            raise EvolveError(f"GitHub API GET {url} answered {response.status_code}: "
                              f"{response.text.strip()[:300]}")
        try:
            data = response.json()
        except ValueError:
            raise EvolveError(f"GitHub API GET {url} answered with non-JSON content") from None
        match = _NEXT.search(response.headers.get("link", ""))
        return data, match.group(1) if match else None

    def pages(self, path: str) -> Iterator[Any]:
        """Each item of every page of a list endpoint under the repository."""
        url: str | None = f"/repos/{self.repository}{path}"
        for _ in range(MAX_PAGES):
            if url is None:
                return
            data, url = self._page(url)
            if not isinstance(data, list):
                raise EvolveError(f"GitHub API answered {path} with {type(data).__name__}, "
                                  "not a list")
            yield from data

    def all_pulls(self) -> list[Any]:
        return list(self.pages("/pulls?state=all&per_page=100&sort=created&direction=asc"))

    def comments(self, number: int) -> list[Any]:
        return list(self.pages(f"/issues/{number}/comments?per_page=100"))

    def viewer(self) -> str | None:
        """The login the token acts as (None when GitHub will not say, e.g. an app token)."""
        try:
            user, _next = self._page("/user")
        except EvolveError:
            return None
        login = user.get("login") if isinstance(user, Mapping) else None
        return login if isinstance(login, str) and login else None

    def add_comment(self, number: int, body: str) -> Any:
        return self._call("POST", f"/issues/{number}/comments", {"body": body})


def _pull(item: Any, viewer: str | None = None) -> LedgerPR | None:
    if not isinstance(item, Mapping) or not _trusted(item, viewer):
        return None  # a stranger's PR cannot cover patterns or pose as a sleeptime PR
    number = item.get("number")
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        return None
    head: Mapping[str, Any] = item["head"] if isinstance(item.get("head"), Mapping) else {}
    base: Mapping[str, Any] = item["base"] if isinstance(item.get("base"), Mapping) else {}
    head_ref = _text(head.get("ref"), 300)
    meta = _own_block(item.get("body"))
    if meta is None and not head_ref.startswith("sleeptime/"):
        return None  # someone else's pull request
    merged_at = parse_time(item.get("merged_at"))
    state = "merged" if merged_at else ("open" if item.get("state") == "open" else "closed")
    merge_sha = item.get("merge_commit_sha") if merged_at else None
    return LedgerPR(
        number=number, forge="github", state=state, title=_text(item.get("title")),
        url=_text(item.get("html_url"), 1000) or _text(item.get("url"), 1000),
        head=head_ref, base=_text(base.get("ref"), 300) or "main",
        commit_sha=_text(head.get("sha"), 64) or None,
        merge_sha=merge_sha if isinstance(merge_sha, str) else None,
        merged_at=merged_at, meta=meta,
        patterns_addressed=[p["id"] for p in meta["patterns"]] if meta
        else _table_ids(item.get("body")),
    )


_TABLE_HEAD = "| Pattern | Type | Severity |"
_TABLE_ROW = re.compile(r"\|\s*([a-z0-9][a-z0-9-]{0,199})\s*(?:\(|\|)")


def _table_ids(body: Any) -> list[str]:
    """The pattern ids of a sleeptime PR body's pattern table, for a body whose metadata
    block is gone or unreadable (a careless edit): the PR still covers them, by id."""
    if not isinstance(body, str) or _TABLE_HEAD not in body:
        return []
    ids: list[str] = []
    for line in body.split(_TABLE_HEAD, 1)[1].splitlines()[2:52]:
        match = _TABLE_ROW.match(line)
        if match is None:
            break
        ids.append(match.group(1))
    return ids


_TRUSTED_ASSOCIATIONS = ("OWNER", "MEMBER", "COLLABORATOR")


def _trusted(item: Mapping[str, Any], viewer: str | None) -> bool:
    """A PR or verdict comment counts when the ledger's own token wrote it (or, when the
    token's login is unknown, a bot or someone with write access to the repository)."""
    user: Mapping[str, Any] = item["user"] if isinstance(item.get("user"), Mapping) else {}
    if viewer is not None:
        return user.get("login") == viewer
    return user.get("type") == "Bot" or item.get("author_association") in _TRUSTED_ASSOCIATIONS


def read_github(client: LedgerClient, with_comments: bool = True) -> list[LedgerPR]:
    """The repository's sleeptime PRs; merged ones with their newest verdict and revert PR."""
    viewer = client.viewer()
    prs = [pr for pr in (_pull(item, viewer) for item in client.all_pulls()) if pr is not None]
    reverts = {pr.meta.get("reverts"): pr.number for pr in prs
               if pr.meta and pr.meta.get("kind") == "revert"}
    for pr in prs:
        pr.revert_pr = reverts.get(pr.number)
        if with_comments and pr.state == "merged":
            for comment in client.comments(pr.number):
                if not isinstance(comment, Mapping) or not _trusted(comment, viewer):
                    continue  # anyone may comment on a public PR: a forged verdict is ignored
                for block in parse_blocks(comment.get("body")):
                    if block["kind"] == "verdict" and block.get("pr") in (None, pr.number):
                        pr.verdict = block
    return sorted(prs, key=lambda p: p.number)


def read_ledger(repo: Path, forge: str, github_repo: str | None = None,
                token: str | None = None) -> list[LedgerPR]:
    """The sleeptime PRs of `repo` on `forge` (local or github)."""
    if forge == "local":
        return read_local(repo)
    if forge != "github":
        raise EvolveError(f"unknown forge '{forge}' (expected local or github)")
    from mgt.evolve.github import token_from_env

    if not github_repo:
        raise EvolveError("the github forge needs the repository name (owner/name)")
    client = LedgerClient(github_repo, token or token_from_env())
    try:
        return read_github(client)
    finally:
        client.close()


def verdict_comment(meta: Mapping[str, Any], text: str) -> str:
    """A comment body: the human text, then the verdict's metadata block."""
    return text.rstrip() + "\n\n" + render_block(meta) + "\n"
