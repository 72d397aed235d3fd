"""A path a proposal would change → why it is protected (CI, git config, mgt's settings), or None.

Some files act beyond the code they sit beside: a CI workflow runs with the
repository's secrets as soon as a branch is pushed, `.gitmodules` and
`.gitattributes` change what git fetches and runs, a dev container or editor
task runs on a reviewer's machine when the branch is opened, and `mgt.toml`,
polecats and formulas set the very guardrails and must_pass commands that check
a proposal. No proposal may add, change, delete or rename into or out of them.
The target's mgt.toml may add paths (`[evolve].protected_paths`), never remove
any; mgt.toml is itself protected, so a proposal cannot change the list.

Matching is made hard to dodge: backslashes are separators, `.` and `..` are
resolved, case is ignored (macOS and Windows file systems ignore it), Unicode
is NFC-normalised with the invisible characters macOS ignores removed, and the
trailing dots and spaces and `:stream` suffixes Windows ignores are dropped.

Deliberately not protected by default: `Makefile` and other build files (they
are ordinary code a change may need, and they run only in the sandbox; a target
whose must_pass runs `make` can add it), and `.gitignore` (it only decides what
stays untracked, and a commit is exactly the reviewed patch).
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from mgt.evolve.diffs import FileDiff

__all__ = [
    "DEFAULT_PROTECTED",
    "ProtectedPath",
    "control_character",
    "normalise",
    "protected_problem",
    "protected_problems",
]


@dataclass(frozen=True)
class ProtectedPath:
    """`pattern`: "name" (that file or directory at any depth), "/path" (from the root), or a
    glob; `why` says what the path does, for the rejection."""

    pattern: str
    why: str


_CI = "CI configuration, run with the repository's secrets when the branch is pushed"
_HOOKS = "git hooks, run on a developer's machine"
_GIT = "git configuration, which changes what git fetches or runs"
_MGT = "mgt's own settings, which set the guardrails and must_pass commands"
_EDITOR = "run on a reviewer's machine when the branch is opened"

DEFAULT_PROTECTED: tuple[ProtectedPath, ...] = (
    ProtectedPath(".github", _CI),
    ProtectedPath(".gitlab-ci.yml", _CI),
    ProtectedPath(".gitlab", _CI),
    ProtectedPath(".circleci", _CI),
    ProtectedPath("Jenkinsfile", _CI),
    ProtectedPath(".travis.yml", _CI),
    ProtectedPath("azure-pipelines.yml", _CI),
    ProtectedPath("azure-pipelines.yaml", _CI),
    ProtectedPath(".azure-pipelines", _CI),
    ProtectedPath(".buildkite", _CI),
    ProtectedPath(".drone.yml", _CI),
    ProtectedPath("bitbucket-pipelines.yml", _CI),
    ProtectedPath(".woodpecker.yml", _CI),
    ProtectedPath(".woodpecker", _CI),
    ProtectedPath(".gitea", _CI),
    ProtectedPath(".forgejo", _CI),
    ProtectedPath("appveyor.yml", _CI),
    ProtectedPath(".appveyor.yml", _CI),
    ProtectedPath("CODEOWNERS", "who must review a change"),
    ProtectedPath(".pre-commit-config.yaml", _HOOKS),
    ProtectedPath(".husky", _HOOKS),
    ProtectedPath(".git", "git's own directory"),
    ProtectedPath(".gitattributes", _GIT),
    ProtectedPath(".gitmodules", _GIT),
    ProtectedPath(".lfsconfig", _GIT),
    ProtectedPath(".devcontainer", _EDITOR),
    ProtectedPath(".devcontainer.json", _EDITOR),
    ProtectedPath(".vscode", _EDITOR),
    ProtectedPath(".envrc", "run by direnv when a shell enters the directory"),
    ProtectedPath("mgt.toml", _MGT),
    ProtectedPath(".mgt", _MGT),
    ProtectedPath("/polecats", _MGT),
    ProtectedPath("/formulas", _MGT),
    ProtectedPath("*.formula.toml", _MGT),
)

# Code points macOS (HFS+) ignores in names, so ".git\u200chub" is ".github" there.
_IGNORABLE = re.compile("[\u00ad\u034f\u180b-\u180e\u200b-\u200f\u202a-\u202e\u2060-\u206f"
                        "\ufe00-\ufe0f\ufeff]")


def control_character(path: str) -> str | None:
    """The first control character (C0, DEL or C1, NUL included) in `path`, as U+XXXX."""
    for ch in path:
        code = ord(ch)
        if code < 0x20 or 0x7F <= code <= 0x9F:
            return f"U+{code:04X}"
    return None


def normalise(path: str) -> str:
    """`path` as the file systems git writes to would resolve it, lower-cased, "/"-separated."""
    text = _IGNORABLE.sub("", unicodedata.normalize("NFC", path)).replace("\\", "/")
    parts = []
    for part in text.split("/"):
        part = part.split(":", 1)[0]  # NTFS: "name::$DATA" is "name"
        stripped = part.rstrip(". ")  # Windows drops trailing dots and spaces
        parts.append(stripped if stripped or part in ("", ".", "..") else part)
    text = posixpath.normpath("/".join(parts)).lstrip("/")
    return "" if text == "." else text.casefold()


def _matches(path: str, pattern: str) -> bool:
    """Does the normalised `path` fall under `pattern` (see ProtectedPath)?"""
    rule = normalise(pattern.rstrip("/")) if not pattern.startswith("/") else None
    if any(ch in pattern for ch in "*?["):
        glob = pattern.strip("/").replace("\\", "/").casefold()
        if "/" not in glob:  # like .gitignore: a bare glob matches a name at any depth
            return any(fnmatch.fnmatchcase(part, glob) for part in path.split("/"))
        return fnmatch.fnmatchcase(path, glob) or fnmatch.fnmatchcase(path, glob + "/*")
    if pattern.startswith("/"):
        anchored = normalise(pattern)
        return path == anchored or path.startswith(anchored + "/")
    assert rule is not None
    if "/" in rule:  # a target's "deploy/prod": a path from the root
        return path == rule or path.startswith(rule + "/")
    return rule in path.split("/")


def protected_problem(
    path: str, extra: Sequence[str] = (), source: str = "mgt.toml [evolve].protected_paths"
) -> str | None:
    """Why a proposal may not change `path` (None when it may); one sentence of feedback."""
    code = control_character(path)
    shown = path if code is None and path.isprintable() else repr(path)
    if code is not None:
        return f"{shown} contains the control character {code}; no path may contain one."
    normal = normalise(path)
    for rule in DEFAULT_PROTECTED:
        if _matches(normal, rule.pattern):
            return (f'"{shown}" is protected ({rule.why}; mgt\'s built-in protected path '
                    f'"{rule.pattern}"); a proposal may not change it.')
    for pattern in extra:
        if _matches(normal, pattern):
            return (f'"{shown}" is protected (the protected path "{pattern}" of {source}); '
                    "a proposal may not change it.")
    return None


def protected_problems(files: Iterable[FileDiff], extra: Sequence[str] = ()) -> list[str]:
    """The problems of every path the `FileDiff`s touch (both sides of a rename)."""
    problems: list[str] = []
    for fd in files:
        for path in fd.paths:
            why = protected_problem(path, extra)
            if why is not None and why not in problems:
                problems.append(why)
    return problems
