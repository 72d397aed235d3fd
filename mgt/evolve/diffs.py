"""Unified diff text → `FileDiff`s (paths, hunks, added/removed counts) → one canonical patch.

Model-written diffs are often slightly off: hunk headers with wrong line
counts, missing `a/`/`b/` prefixes, a blank context line without its leading
space, prose after the last hunk. The parser reads them the way
`git apply --recount` would, and `render_patch` writes them back in git's own
form (canonical headers, recounted hunk headers, prose dropped), so the
patch that is checked is exactly the patch that is committed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DiffError",
    "FileDiff",
    "Hunk",
    "combined_patch",
    "parse_diff",
    "render_patch",
]

DEV_NULL = "/dev/null"
_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@(.*)$")
_DIFF_GIT = re.compile(r'^diff --git (?:"?a/)?(.+?)"? (?:"?b/)?(.+?)"?$')
# Extended header lines git understands and that we keep (index lines are dropped).
_KEPT_EXTENDED = ("new file mode ", "deleted file mode ", "old mode ", "new mode ")


class DiffError(ValueError):
    """The text is not a unified diff; `line` is 1-based within the text."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.reason = message


@dataclass(frozen=True)
class Hunk:
    old_start: int
    new_start: int
    section: str  # text after the closing @@ (often a function name)
    lines: tuple[str, ...]  # body lines, each starting with ' ', '+', '-' or '\\'

    @property
    def added(self) -> int:
        return sum(1 for line in self.lines if line.startswith("+"))

    @property
    def removed(self) -> int:
        return sum(1 for line in self.lines if line.startswith("-"))

    @property
    def old_count(self) -> int:
        return sum(1 for line in self.lines if line[:1] in (" ", "-"))

    @property
    def new_count(self) -> int:
        return sum(1 for line in self.lines if line[:1] in (" ", "+"))

    def render(self) -> str:
        old = _range(self.old_start, self.old_count)
        new = _range(self.new_start, self.new_count)
        return "\n".join((f"@@ -{old} +{new} @@{self.section}", *self.lines))


def _range(start: int, count: int) -> str:
    # git writes "N" for a one-line range and "N-1,0" style starts for empty ones.
    return str(start) if count == 1 else f"{start},{count}"


@dataclass(frozen=True)
class FileDiff:
    old_path: str | None  # None: the file is new (/dev/null)
    new_path: str | None  # None: the file is deleted
    hunks: tuple[Hunk, ...]
    extended: tuple[str, ...] = ()  # mode lines kept from a git header
    binary: bool = False

    @property
    def path(self) -> str:
        """The path the change is about: the new path, or the old one for a deletion."""
        return self.new_path or self.old_path or ""

    @property
    def paths(self) -> tuple[str, ...]:
        """Every path this diff touches (two for a rename)."""
        found = [p for p in (self.old_path, self.new_path) if p is not None]
        return tuple(dict.fromkeys(found))

    @property
    def is_new(self) -> bool:
        return self.old_path is None

    @property
    def is_deleted(self) -> bool:
        return self.new_path is None

    @property
    def added(self) -> int:
        return sum(h.added for h in self.hunks)

    @property
    def removed(self) -> int:
        return sum(h.removed for h in self.hunks)

    def render(self) -> str:
        old = self.old_path or self.new_path or ""
        new = self.new_path or self.old_path or ""
        head = [f"diff --git a/{old} b/{new}", *self.extended]
        if self.is_new and not any(e.startswith("new file mode") for e in self.extended):
            head.append("new file mode 100644")
        if self.is_deleted and not any(e.startswith("deleted file mode") for e in self.extended):
            head.append("deleted file mode 100644")
        if self.old_path != self.new_path and not self.is_new and not self.is_deleted:
            head += [f"rename from {self.old_path}", f"rename to {self.new_path}"]
        if self.hunks:
            head.append(f"--- a/{self.old_path}" if self.old_path else f"--- {DEV_NULL}")
            head.append(f"+++ b/{self.new_path}" if self.new_path else f"+++ {DEV_NULL}")
        return "\n".join([*head, *(h.render() for h in self.hunks)]) + "\n"


def _clean_path(raw: str) -> str | None:
    """A header path without its timestamp, quotes and a/ b/ prefix; None for /dev/null."""
    text = raw.split("\t", 1)[0].strip()
    if text.startswith('"') and text.endswith('"') and len(text) >= 2:
        text = _unquote(text[1:-1])
    if text == DEV_NULL:
        return None
    if text.startswith(("a/", "b/")):
        text = text[2:]
    return text


def _unquote(text: str) -> str:
    """git's C-style quoting (\\t, \\", \\\\, octal bytes) → the path."""
    out = bytearray()
    i = 0
    raw = text.encode("utf-8")
    while i < len(raw):
        c = raw[i]
        if c == 0x5C and i + 1 < len(raw):  # backslash
            nxt = chr(raw[i + 1])
            if nxt in "01234567" and i + 3 < len(raw) + 1:
                digits = raw[i + 1 : i + 4].decode("ascii", "replace")
                if re.fullmatch(r"[0-7]{3}", digits):
                    out.append(int(digits, 8))
                    i += 4
                    continue
            out += {"t": b"\t", "n": b"\n", '"': b'"', "\\": b"\\"}.get(nxt, nxt.encode())
            i += 2
            continue
        out.append(c)
        i += 1
    return out.decode("utf-8", "replace")


def _is_file_header(lines: Sequence[str], i: int) -> bool:
    return (
        lines[i].startswith("--- ")
        and i + 1 < len(lines)
        and lines[i + 1].startswith("+++ ")
    )


def _is_body_line(line: str) -> bool:
    return line == "" or line[0] in " +-\\"


def parse_diff(text: str) -> list[FileDiff]:
    """Every file section of a unified (or git) diff; text around the sections is ignored.

    Raises DiffError when there is no file section at all, or a section is broken
    (a hunk outside a file, a file header with no hunks that is not a git
    mode/rename/new/delete header).
    """
    lines = text.replace("\r\n", "\n").split("\n")
    while lines and lines[-1] == "":
        lines.pop()
    files: list[FileDiff] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("diff --git "):
            fd, i = _parse_git_section(lines, i)
            files.append(fd)
        elif _is_file_header(lines, i):
            old, new = _clean_path(lines[i][4:]), _clean_path(lines[i + 1][4:])
            hunks, i = _parse_hunks(lines, i + 2)
            if not hunks:
                raise DiffError(f"no hunks after the file header for {new or old}", i + 1)
            files.append(FileDiff(old, new, tuple(hunks)))
        elif line.startswith("@@ "):
            raise DiffError("a hunk (@@ ... @@) before any ---/+++ file header", i + 1)
        else:
            i += 1  # prose, "Index:" lines, rationale text...
    if not files:
        raise DiffError("no ---/+++ file headers found (not a unified diff)", 1)
    return files


def _parse_git_section(lines: Sequence[str], i: int) -> tuple[FileDiff, int]:
    start = i
    match = _DIFF_GIT.match(lines[i])
    old: str | None = match.group(1) if match else None
    new: str | None = match.group(2) if match else None
    extended: list[str] = []
    binary = is_new = is_deleted = False
    i += 1
    while i < len(lines) and not lines[i].startswith(("--- ", "diff --git ", "@@ ")):
        line = lines[i]
        if line.startswith(_KEPT_EXTENDED):
            extended.append(line)
            is_new = is_new or line.startswith("new file mode ")
            is_deleted = is_deleted or line.startswith("deleted file mode ")
        elif line.startswith("rename from "):
            old = line[len("rename from "):]
        elif line.startswith("rename to "):
            new = line[len("rename to "):]
        elif line.startswith(("Binary files ", "GIT binary patch")):
            binary = True
        i += 1
    hunks: list[Hunk] = []
    if i < len(lines) and _is_file_header(lines, i):
        # The ---/+++ paths are the authority (/dev/null marks a new or deleted file).
        old, new = _clean_path(lines[i][4:]), _clean_path(lines[i + 1][4:])
        hunks, i = _parse_hunks(lines, i + 2)
    if is_new:
        old = None
    if is_deleted:
        new = None
    if old is None and new is None:
        raise DiffError("a `diff --git` line without readable paths", start + 1)
    if not hunks and not binary and not extended and old == new:
        raise DiffError(f"no hunks for {new or old}", start + 1)
    return FileDiff(old, new, tuple(hunks), tuple(extended), binary), i


def _parse_hunks(lines: Sequence[str], i: int) -> tuple[list[Hunk], int]:
    hunks: list[Hunk] = []
    while i < len(lines) and lines[i].startswith("@@ "):
        match = _HUNK.match(lines[i])
        if match is None:
            raise DiffError(f"malformed hunk header {lines[i]!r}", i + 1)
        old_start, old_n, new_start, new_n, section = match.groups()
        i += 1
        body, i = _hunk_body(
            lines, i, 1 if old_n is None else int(old_n), 1 if new_n is None else int(new_n)
        )
        if not any(line[:1] in "+-" for line in body):
            raise DiffError(f"hunk at line {i} changes nothing", i)
        hunks.append(Hunk(int(old_start), int(new_start), section, tuple(body)))
    return hunks, i


def _hunk_body(lines: Sequence[str], i: int, old_n: int, new_n: int) -> tuple[list[str], int]:
    """The body of one hunk: by its header's counts when they fit, else scanned."""
    counted, j = _by_counts(lines, i, old_n, new_n)
    if counted is not None:
        return counted, j
    body: list[str] = []
    raw: list[str] = []
    while i < len(lines):
        line = lines[i]
        if line.startswith(("@@ ", "diff --git ")) or _is_file_header(lines, i):
            break
        if not _is_body_line(line):
            break
        body.append(line if line else " ")
        raw.append(line)
        i += 1
    # Blank lines before the next section are separators, not context.
    while raw and raw[-1] == "":
        raw.pop()
        body.pop()
    return body, i


def _by_counts(
    lines: Sequence[str], i: int, old_n: int, new_n: int
) -> tuple[list[str] | None, int]:
    body: list[str] = []
    old = new = 0
    while i < len(lines) and (old < old_n or new < new_n):
        line = lines[i]
        if not _is_body_line(line) or line.startswith(("@@ ", "diff --git ")):
            return None, i
        kind = line[:1] or " "
        if kind == " ":
            old += 1
            new += 1
        elif kind == "-":
            old += 1
        elif kind == "+":
            new += 1
        body.append(line if line else " ")
        i += 1
    while i < len(lines) and lines[i].startswith("\\"):
        body.append(lines[i])
        i += 1
    if old != old_n or new != new_n:
        return None, i
    # The counts fit only if what follows is not more hunk body.
    if i < len(lines) and lines[i][:1] in ("+", "-", " ") and not _is_file_header(lines, i):
        return None, i
    return body, i


def render_patch(files: Iterable[FileDiff]) -> str:
    """One patch in git's form, for `git apply -p1`."""
    return "".join(fd.render() for fd in files)


def combined_patch(changes: Sequence[Mapping[str, Any]]) -> str:
    """The `changes[].diff` of a ProposedChanges as one canonical patch (DiffError if broken)."""
    files: list[FileDiff] = []
    for change in changes:
        files.extend(parse_diff(str(change.get("diff", ""))))
    return render_patch(files)
