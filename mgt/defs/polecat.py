"""Polecat TOML (`polecats/*.toml`) → `Polecat`: model, system prompt, tools, output, guardrails.

Known keys are typed; unknown keys are kept (`extra="allow"`) so files written
for a newer version still load. A misspelt section name close to a known one
(`[guardrials]`) is an error, since it would silently drop the section.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mgt.defs.files import display_path, pydantic_error, read_toml, require_dir
from mgt.diagnostics import did_you_mean
from mgt.errors import DefinitionError

__all__ = [
    "GitConfig",
    "ModelConfig",
    "PRConfig",
    "Polecat",
    "PolecatGuardrails",
    "PolecatInfo",
    "PolecatOutput",
    "PolecatValidation",
    "PromptConfig",
    "Schedule",
    "SystemPrompt",
    "Thresholds",
    "ToolsConfig",
    "load_polecat",
    "load_polecats",
]


class Section(BaseModel):
    """A TOML table: typed known keys, unknown keys kept, immutable once loaded."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)


class NamedSection(Section):
    """The `[polecat]` / `[formula]` table: a definition's name, which must not be blank."""

    name: str
    description: str = ""

    @field_validator("name")
    @classmethod
    def _name_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value


class PolecatInfo(NamedSection):
    role: str | None = None


class ModelConfig(Section):
    provider: str = "anthropic"
    name: str
    max_tokens: int | None = Field(default=None, gt=0)
    temperature: float | None = Field(default=None, ge=0, le=2)


class SystemPrompt(Section):
    content: str = ""


class PromptConfig(Section):
    system: SystemPrompt = SystemPrompt()


class ToolsConfig(Section):
    available: tuple[str, ...] = ()


class PolecatOutput(Section):
    format: str = "json"  # json | diff | text | markdown
    schema_name: str | None = Field(default=None, alias="schema")
    fields: tuple[str, ...] = ()
    include_rationale: bool = False
    include_metrics: bool = False


class PolecatGuardrails(Section):
    max_files_changed: int | None = Field(default=None, ge=0)
    max_lines_changed: int | None = Field(default=None, ge=0)
    require_pattern_link: bool = False
    forbidden_paths: tuple[str, ...] = ()


class PolecatValidation(Section):
    require_typecheck: bool = False
    require_tests: bool = False


class Thresholds(Section):
    """The analyzer's limits (log-analyzer polecat); defaults are the original file's values."""

    min_occurrences: int = Field(default=3, ge=1)
    latency_warning_ms: float = Field(default=2000, ge=0)
    latency_critical_ms: float = Field(default=5000, ge=0)
    error_rate_warning: float = Field(default=0.05, ge=0, le=1)
    error_rate_critical: float = Field(default=0.15, ge=0, le=1)
    #: nodes a transition to which is a failure, besides those whose name holds "error" or
    #: "fail" (names, or shell-style patterns such as "*Fallback")
    failure_nodes: list[str] = Field(default_factory=list)


class Schedule(Section):
    trigger: str = "manual"
    lookback: str | None = None


class GitConfig(Section):
    """[git] of a polecat or formula (they use different subsets of these keys)."""

    base_branch: str = "main"
    branch_prefix: str | None = None
    branch_format: str | None = None
    commit_message_format: str | None = None
    commit_footer: str | None = None
    footer: str | None = None


class PRConfig(Section):
    """[pr] of a polecat or formula."""

    labels: tuple[str, ...] = ()
    assignees: tuple[str, ...] = ()
    reviewers: tuple[str, ...] = ()
    draft: bool | None = None
    title_format: str | None = None
    body_template: str | None = None


class Polecat(Section):
    """An agent: model + system prompt + tool allowlist + output contract + guardrails."""

    polecat: PolecatInfo
    model: ModelConfig
    prompt: PromptConfig = PromptConfig()
    tools: ToolsConfig = ToolsConfig()
    output: PolecatOutput = PolecatOutput()
    guardrails: PolecatGuardrails = PolecatGuardrails()
    validation: PolecatValidation = PolecatValidation()
    thresholds: Thresholds | None = None
    schedule: Schedule | None = None
    git: GitConfig | None = None
    pr: PRConfig | None = None
    path: str = ""  # the file it was loaded from, as shown to users

    @property
    def name(self) -> str:
        return self.polecat.name

    @property
    def system_prompt(self) -> str:
        """The system prompt text, without the TOML multi-line string's leading newline."""
        return self.prompt.system.content.strip("\n")

    @property
    def output_schema(self) -> str | None:
        """The schema registry key of this polecat's output, if it declares one."""
        return self.output.schema_name

    @property
    def tool_names(self) -> tuple[str, ...]:
        return tuple(self.tools.available)


_POLECAT_SECTIONS = (
    "polecat", "model", "prompt", "tools", "output", "guardrails", "validation",
    "thresholds", "schedule", "git", "pr",
)


def check_section_names(path: Path, data: dict[str, Any], known: tuple[str, ...]) -> None:
    """Reject an unknown top-level table that is a near-miss of a known one (`[guardrials]`)."""
    for key in data:
        if key in known:
            continue
        hint = did_you_mean(key, known)
        if hint:
            raise DefinitionError(f"{display_path(path)}: [{key}]: unknown table ({hint})")


def load_polecat(path: str | Path) -> Polecat:
    """Read one polecat TOML file. Raises DefinitionError naming the file and key."""
    p = Path(path)
    data = read_toml(p)
    check_section_names(p, data, _POLECAT_SECTIONS)
    try:
        return Polecat.model_validate({**data, "path": display_path(p)})
    except ValidationError as e:
        raise pydantic_error(p, e) from None


def load_polecats(directory: str | Path) -> dict[str, Polecat]:
    """Every `*.toml` (not `*.formula.toml`) in `directory`, keyed by `[polecat].name`."""
    d = require_dir(directory)
    found: dict[str, Polecat] = {}
    for file in sorted(d.glob("*.toml")):
        if file.name.endswith(".formula.toml"):
            continue
        polecat = load_polecat(file)
        if polecat.name in found:
            raise DefinitionError(
                f"{display_path(file)}: [polecat].name: '{polecat.name}' is already defined "
                f"in {found[polecat.name].path}"
            )
        found[polecat.name] = polecat
    return found
