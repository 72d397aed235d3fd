"""The one error family of mgt; third-party errors are converted at the edge into these.

    MgtError                      anything mgt reports to a user (message, exit code)
     ├── UsageError               bad command-line usage or bad input value (exit 2)
     ├── SourceError(span)        a problem at a place in a source file (.mgt, TOML, JSON)
     │    ├── ParseError          the text does not follow the grammar / format
     │    └── CheckError          one or more static-check diagnostics (holds them all)
     ├── DefinitionError          a polecat, formula or schema file is invalid (file + key)
     └── RunError                 something failed while running
          ├── Interrupted         SIGINT/SIGTERM stopped a run; journaled, resumable (exit 130)
          ├── StepFailure         a built-in step failed (→ its state's `error` outcome)
          │    └── GuardrailFailure   a step or output check rejected its input (→ `guardrail`)
          ├── ExprError(span)     a guard or binding could not be evaluated (null compared, ...)
          ├── ExecutorError       an executor could not run or returned garbage
          ├── JournalError        a run directory is missing, corrupt or locked
          ├── LokiError           the log source failed (HTTP, auth, unreachable)
          └── EvolveError         git, worktree, validation or forge failures

The CLI catches `MgtError` once, prints `str(error)` as one line (or the rendered
diagnostics) and exits with `error.exit_code`. Nothing else may escape to a user.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mgt.diagnostics import Diagnostic
    from mgt.span import Span

__all__ = [
    "CheckError",
    "DefinitionError",
    "EvolveError",
    "ExecutorError",
    "ExprError",
    "GuardrailFailure",
    "Interrupted",
    "JournalError",
    "LokiError",
    "MgtError",
    "ParseError",
    "RunError",
    "SourceError",
    "StepFailure",
    "UsageError",
]


class MgtError(Exception):
    """Base of every error mgt shows to a user."""

    exit_code: int = 2

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(MgtError):
    """Bad command-line usage or a bad input value."""


class SourceError(MgtError):
    """An error at a position in a source file."""

    def __init__(self, message: str, span: Span | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.span = span
        self.hint = hint

    def __str__(self) -> str:
        where = f"{self.span}: " if self.span is not None else ""
        return f"{where}error: {self.message}"


class ParseError(SourceError):
    """The text does not follow the grammar (or TOML/JSON syntax)."""


class CheckError(SourceError):
    """Static checks failed; carries every diagnostic (warnings too), not just the first.

    `path` is the checked file and `sources` its text (by file name), so the CLI can
    render them the way `mgt check` does.
    """

    exit_code = 1

    def __init__(self, diagnostics: list[Diagnostic], *, path: str | None = None,
                 sources: dict[str, str] | None = None) -> None:
        first = next((d for d in diagnostics if d.is_error), diagnostics[0] if diagnostics
                     else None)
        super().__init__(first.message if first else "check failed", first.span if first else None)
        self.diagnostics = diagnostics
        self.path = path
        self.sources = dict(sources or {})


class DefinitionError(MgtError):
    """A polecat, formula or schema definition is invalid; the message names file and key.

    `span` is set when the position is known (malformed TOML/JSON); the message
    then already starts with `file:line:col:`.
    """

    def __init__(self, message: str, span: Span | None = None) -> None:
        super().__init__(message)
        self.span = span


class RunError(MgtError):
    """A failure while running a machine or talking to an outside system."""


class Interrupted(RunError):
    """The run was stopped by SIGINT/SIGTERM; it is journaled as interrupted and resumable."""

    exit_code = 130


class StepFailure(RunError):
    """A built-in step failed (→ the `error` event); the message is shown and journaled."""

    def __init__(self, message: str = "") -> None:
        super().__init__(message)


class GuardrailFailure(StepFailure):
    """A built-in step or output check rejected its input (→ the `guardrail` event).

    `problems` are the exact reasons, each a sentence; they become retry feedback.
    """

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class ExprError(RunError):
    """A guard or binding expression failed at run time; `span` is the offending sub-expression."""

    def __init__(self, message: str, span: Span | None = None) -> None:
        super().__init__(message)
        self.span = span

    def __str__(self) -> str:
        where = f"{self.span}: " if self.span is not None else ""
        return f"{where}{self.message}"


class ExecutorError(RunError):
    """An executor could not start, crashed, or returned something unusable."""


class JournalError(RunError):
    """A run directory is missing, corrupt, or held by another process."""


class LokiError(RunError):
    """The log source could not be read (HTTP error, auth, unreachable host)."""


class EvolveError(RunError):
    """git, worktree, validation-command or forge failure in the evolve cycle."""
