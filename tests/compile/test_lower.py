"""Checked MachineDecl + definitions → Machine: every default filled, implicit fail routes added."""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import SimpleNamespace

import pytest

from mgt.compile.lower import (
    DEFAULT_TIMEOUT_SECONDS,
    IMPLICIT_FAIL_MESSAGE,
    input_value,
    lower,
    lower_checked,
)
from mgt.compile.model import EVENTS, IMPLICIT_FAIL, Machine, RetrySpec, TransitionSpec
from mgt.defs import SchemaRegistry, load_formulas, load_polecats
from mgt.diagnostics import Diagnostic
from mgt.errors import CheckError
from mgt.expr import Duration, evaluate_guard
from mgt.span import Span
from mgt.syntax import parse_source

ROOT = Path(__file__).resolve().parents[2]
POLECATS = load_polecats(ROOT / "polecats")
FORMULAS = load_formulas(ROOT / "formulas")
SCHEMAS = SchemaRegistry.load_dir(ROOT / "schemas")

EVOLVE = '''\
machine evolve "Analyze production logs, refine the DSL, file a PR"

import polecats from "../polecats"
import formulas from "../formulas"
import schemas from "../schemas"

input since: duration = 24h
input query_type: enum("all", "transitions", "llm-calls", "errors", "sessions") = "all"
input min_occurrences: int = 3
input draft: bool = true
input repo: path = "."
input reviewer: str

state analyze:
    run formula analyze
    with since = input.since, query_type = input.query_type,
         min_occurrences = input.min_occurrences
    output PatternReport
    timeout 120s
    retry 2 on schema_invalid with feedback
    on done when output.summary.total_patterns == 0 -> no_patterns
    on done when count(output.patterns,
                       it.severity != "info") == 0 -> no_patterns
    on done -> refine
    on timeout -> failed

state refine:
    run formula refine
    with patterns = analyze.output
    retry 1 on schema_invalid, guardrail with feedback backoff 5s
    on done -> file_pr

state file_pr:
    run formula file-pr
    with changes = refine.output, evidence = analyze.output, draft = input.draft
    on done -> filed

final filed: succeed
final no_patterns: succeed "no actionable patterns"
final failed: fail
'''


def lowered(source: str, **overrides: object) -> Machine:
    decl = parse_source(source, "machines/m.mgt")
    kwargs: dict[str, object] = {
        "source": source, "polecats": POLECATS, "formulas": FORMULAS, "schemas": SCHEMAS,
    }
    kwargs.update(overrides)
    return lower(decl, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def evolve() -> Machine:
    return lowered(EVOLVE)


def test_machine_header(evolve: Machine) -> None:
    assert evolve.name == "evolve"
    assert evolve.description == "Analyze production logs, refine the DSL, file a PR"
    assert evolve.source_path == "machines/m.mgt"
    assert evolve.source_hash == hashlib.sha256(EVOLVE.encode()).hexdigest()
    assert evolve.start == "analyze"
    assert list(evolve.states) == ["analyze", "refine", "file_pr"]
    assert evolve.polecats["log-analyzer"] is POLECATS["log-analyzer"]
    assert set(evolve.formulas) == {"analyze", "refine", "file-pr"}
    assert evolve.schemas is SCHEMAS


def test_inputs_become_runtime_values(evolve: Machine) -> None:
    inputs = {i.name: i for i in evolve.inputs}
    assert [i.name for i in evolve.inputs] == [
        "since", "query_type", "min_occurrences", "draft", "repo", "reviewer",
    ]
    assert inputs["since"].default == Duration(86400, "24h")
    assert inputs["since"].type == "duration" and not inputs["since"].required
    assert inputs["query_type"].enum_values == (
        "all", "transitions", "llm-calls", "errors", "sessions",
    )
    assert inputs["query_type"].default == "all"
    assert inputs["min_occurrences"].default == 3
    assert inputs["draft"].default is True
    # A path default is relative to the machine file, like its imports.
    assert inputs["repo"].default == str((Path("machines/m.mgt").resolve().parent).resolve())
    assert inputs["reviewer"].required and inputs["reviewer"].default is None
    assert evolve.input("since") is inputs["since"]


def test_explicit_clauses_win(evolve: Machine) -> None:
    analyze = evolve.states["analyze"]
    assert analyze.run.kind == "formula" and analyze.run.target == "analyze"
    assert [name for name, _ in analyze.bindings] == ["since", "query_type", "min_occurrences"]
    assert analyze.output_schema == "PatternReport"
    assert analyze.timeout_seconds == 120
    assert analyze.retries == (RetrySpec(2, frozenset({"schema_invalid"}), feedback=True),)
    refine = evolve.states["refine"]
    assert refine.retries == (
        RetrySpec(1, frozenset({"schema_invalid", "guardrail"}), True, backoff_seconds=5.0),
    )


def test_defaults_come_from_the_formula(evolve: Machine) -> None:
    refine = evolve.states["refine"]
    assert refine.output_schema == "ProposedChanges"  # [output].type
    assert refine.timeout_seconds == 180  # [execution].timeout_seconds
    file_pr = evolve.states["file_pr"]
    assert file_pr.output_schema == "PRResult"
    assert file_pr.timeout_seconds == 60
    # no retry clause: [execution].retry_count times on schema_invalid, with feedback
    assert file_pr.retries == (RetrySpec(1, frozenset({"schema_invalid"}), feedback=True),)
    assert file_pr.retry_for("schema_invalid") is file_pr.retries[0]
    assert file_pr.retry_for("timeout") is None


def test_transitions_in_order_then_implicit_fail(evolve: Machine) -> None:
    analyze = evolve.states["analyze"]
    declared = [t for t in analyze.transitions if not t.implicit]
    assert [(t.event, t.target) for t in declared] == [
        ("done", "no_patterns"), ("done", "no_patterns"), ("done", "refine"),
        ("timeout", "failed"),
    ]
    assert declared[0].guard_source == "output.summary.total_patterns == 0"
    # a guard written over two lines is kept on one
    assert declared[1].guard_source == 'count(output.patterns, it.severity != "info") == 0'
    assert declared[2].guard is None and declared[2].guard_source is None
    implicit = [t for t in analyze.transitions if t.implicit]
    assert implicit == [
        TransitionSpec(event, IMPLICIT_FAIL, implicit=True)
        for event in ("schema_invalid", "guardrail", "error")
    ]
    file_pr = evolve.states["file_pr"]
    assert [t.event for t in file_pr.transitions if t.implicit] == [
        e for e in EVENTS if e != "done"
    ]


def test_guards_evaluate_on_the_lowered_model(evolve: Machine) -> None:
    first, second = evolve.states["analyze"].transitions[:2]
    assert first.guard is not None and second.guard is not None
    output = {
        "patterns": [{"severity": "info"}],
        "summary": {"total_patterns": 1, "critical": 0, "warning": 0, "info": 1},
    }
    env = {"output": output, "input": {}}
    assert evaluate_guard(first.guard, env) is False
    assert evaluate_guard(second.guard, env) is True


def test_finals_and_the_implicit_fail_final(evolve: Machine) -> None:
    assert evolve.finals["no_patterns"].message == "no actionable patterns"
    assert evolve.finals["failed"].status == "fail"
    implicit = evolve.finals[IMPLICIT_FAIL]
    assert implicit.status == "fail" and implicit.implicit
    assert implicit.message == IMPLICIT_FAIL_MESSAGE
    assert evolve.is_final("filed") and not evolve.is_final("refine")


def test_commands_builtins_and_polecats() -> None:
    machine = lowered('''\
machine other
input level: float = 2
start scan
state build:
    run command "make test"
    on done -> ok
    on schema_invalid -> ok
    on guardrail -> ok
    on timeout -> ok
    on error -> ok
state scan:
    run builtin analyze-logs
    output PatternReport
    timeout 5m
    on done when output.summary.critical > 0 -> ask
    on done -> build
state ask:
    run polecat log-analyzer prompt "Look again"
    on done -> build
state draft:
    run polecat conditional-refiner prompt "Draft"
    retry 3 on error backoff 500ms
    on done -> ok
final ok: succeed
''')
    assert machine.start == "scan"
    assert machine.input("level") is not None
    assert machine.input("level").default == 2.0  # type: ignore[union-attr]
    assert isinstance(machine.input("level").default, float)  # type: ignore[union-attr]
    build = machine.states["build"]
    assert build.run.kind == "command" and build.run.command == "make test"
    assert build.output_schema is None
    assert build.timeout_seconds == DEFAULT_TIMEOUT_SECONDS
    assert build.retries == ()
    assert not any(t.implicit for t in build.transitions)
    scan = machine.states["scan"]
    assert scan.run.target == "analyze-logs"
    assert scan.output_schema == "PatternReport" and scan.timeout_seconds == 300
    # only guarded `done`s do not cover `done`: an implicit fallback follows them
    assert [(t.event, t.implicit) for t in scan.transitions if t.event == "done"] == [
        ("done", False), ("done", False),
    ]
    assert ("done", IMPLICIT_FAIL) not in [(t.event, t.target) for t in scan.transitions]
    ask = machine.states["ask"]
    assert ask.run.prompt == "Look again"
    assert ask.output_schema == "PatternReport"  # the polecat's [output].schema
    assert ask.timeout_seconds == DEFAULT_TIMEOUT_SECONDS
    assert ask.retries == ()  # polecats have no retry_count
    draft = machine.states["draft"]
    assert draft.output_schema is None  # conditional-refiner outputs a diff
    assert draft.retries == (RetrySpec(3, frozenset({"error"}), False, 0.5),)


def test_only_guarded_done_gets_an_implicit_fallback() -> None:
    machine = lowered('''\
machine g
state s:
    run builtin noop
    on done when true -> ok
final ok: succeed
''')
    routes = [(t.event, t.target, t.implicit) for t in machine.states["s"].transitions]
    assert routes[0] == ("done", "ok", False)
    assert ("done", IMPLICIT_FAIL, True) in routes


def test_no_implicit_final_when_every_outcome_is_handled() -> None:
    handled = "".join(f"    on {event} -> ok\n" for event in EVENTS)
    machine = lowered(f"machine h\nstate s:\n    run builtin noop\n{handled}final ok: succeed\n")
    assert IMPLICIT_FAIL not in machine.finals


def test_missing_definitions_are_check_errors() -> None:
    source = '''\
machine bad
input n: int = 1
state s:
    run formula analyse
    on done -> ok
state t:
    run polecat nobody prompt "x"
    output Nope
    on done -> ok
final ok: succeed
'''
    with pytest.raises(CheckError) as info:
        lowered(source)
    messages = [(d.message, d.span.line if d.span else None) for d in info.value.diagnostics]
    assert messages == [
        ("unknown formula 'analyse'", 4),
        ("unknown polecat 'nobody'", 7),
        ("unknown schema 'Nope'", 8),
    ]


def test_bad_default_is_a_check_error() -> None:
    with pytest.raises(CheckError) as info:
        lowered('machine d\ninput since: duration = "soon"\nstate s:\n    run builtin noop\n'
                "    on done -> ok\nfinal ok: succeed\n")
    assert info.value.diagnostics[0].message.startswith(
        "input 'since': bad default: invalid duration 'soon'"
    )


def test_lower_checked_refuses_results_with_errors() -> None:
    error = Diagnostic.error("unknown state 'x'", Span.point("m.mgt", 3, 5))
    warning = Diagnostic.warning("unreachable", None)
    result = SimpleNamespace(machine=None, diagnostics=[warning, error])
    with pytest.raises(CheckError) as info:
        lower_checked(result)
    # the warnings come along, so a run refused shows what `mgt check` shows
    assert info.value.diagnostics == [warning, error]
    assert info.value.message == "unknown state 'x'"
    assert info.value.exit_code == 1


def test_lower_checked_lowers_a_clean_result(tmp_path: Path) -> None:
    path = tmp_path / "m.mgt"
    path.write_text(EVOLVE, encoding="utf-8")
    decl = parse_source(EVOLVE, str(path))
    result = SimpleNamespace(
        machine=decl, diagnostics=[Diagnostic.warning("something", None)],
        polecats=POLECATS, formulas=FORMULAS, schemas=SCHEMAS,
    )
    machine = lower_checked(result)  # no `source`: read back from the file
    assert machine.source_hash == hashlib.sha256(EVOLVE.encode()).hexdigest()
    assert machine.states["file_pr"].timeout_seconds == 60


def test_input_value() -> None:
    assert input_value("duration", "2h") == Duration(7200, "2h")
    assert input_value("duration", Duration(1, "1s")) == Duration(1, "1s")
    assert input_value("float", 3) == 3.0 and isinstance(input_value("float", 3), float)
    assert input_value("bool", True) is True
    assert input_value("str", None) is None
    with pytest.raises(ValueError, match="expected a duration"):
        input_value("duration", 5)


# --- through the checker: load_machine(path) ----------------------------------


def write_machine(tmp_path: Path, body: str) -> Path:
    imports = "".join(
        f'import {kind} from "{ROOT / kind}"\n' for kind in ("polecats", "formulas", "schemas")
    )
    path = tmp_path / "m.mgt"
    path.write_text(f"machine m\n{imports}{body}", encoding="utf-8")
    return path


def test_load_machine_checks_then_lowers(tmp_path: Path) -> None:
    from mgt.compile import load_machine

    path = write_machine(tmp_path, '''\
input since: duration = 7d
state analyze:
    run formula analyze
    with since = input.since
    on done when output.summary.total_patterns == 0 -> quiet
    on done -> loud
final quiet: succeed
final loud: succeed "patterns found"
''')
    machine = load_machine(path)
    assert machine.source_path == str(path)
    assert machine.source_hash == hashlib.sha256(path.read_bytes()).hexdigest()
    assert machine.input("since") is not None
    assert machine.input("since").default == Duration(604800, "7d")  # type: ignore[union-attr]
    analyze = machine.states["analyze"]
    assert analyze.output_schema == "PatternReport"
    assert analyze.timeout_seconds == 120
    assert analyze.retries == (RetrySpec(2, frozenset({"schema_invalid"}), feedback=True),)
    assert machine.formulas["analyze"].polecat == "log-analyzer"
    assert machine.schemas is not None and "PatternReport" in machine.schemas


def test_load_machine_raises_every_check_error(tmp_path: Path) -> None:
    from mgt.compile import load_machine

    path = write_machine(tmp_path, '''\
state analyze:
    run formula analyze
    on done when output.summary.totl_patterns == 0 -> quiet
    on done when lenn(output.patterns) > 0 -> quiet
    on done -> quiet
final quiet: succeed
''')
    with pytest.raises(CheckError) as info:
        load_machine(path)
    messages = [d.message for d in info.value.diagnostics if d.is_error]
    assert "unknown field 'totl_patterns' in PatternReport.summary " \
           "(did you mean 'total_patterns'?)" in messages
    assert "unknown function 'lenn' (did you mean 'len'?)" in messages
    assert info.value.exit_code == 1


@pytest.mark.parametrize("name", ["evolve.mgt", "analyze.mgt"])
def test_bundled_machines_lower(name: str) -> None:
    from mgt.compile import load_machine

    path = ROOT / "machines" / name
    if not path.exists():
        pytest.skip(f"machines/{name} is not written yet")
    machine = load_machine(path)
    assert machine.start in machine.states
    for state in machine.states.values():
        assert state.timeout_seconds is not None and state.timeout_seconds > 0
        covered = {t.event for t in state.transitions if t.guard is None}
        assert covered == set(EVENTS)  # declared or implicit, every outcome has a route
        for t in state.transitions:
            assert t.target in machine.states or t.target in machine.finals


def test_path_defaults_resolve_against_the_machine_file_but_urls_do_not(tmp_path: Path) -> None:
    from mgt.compile import load_machine

    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "m.mgt"
    path.write_text(
        'machine m\n'
        'input repo: path = "../target"\n'
        'input logs: path = "http://loki.example:3100"\n'
        'input abs: path = "/srv/x"\n'
        'state s:\n    run builtin noop\n    on done -> ok\n'
        'final ok: succeed\n'
    )
    inputs = {i.name: i.default for i in load_machine(path).inputs}
    assert inputs["repo"] == str((tmp_path / "target").resolve())
    assert inputs["logs"] == "http://loki.example:3100"
    assert inputs["abs"] == "/srv/x"


def test_a_machine_pins_the_machines_it_runs_and_what_they_load(tmp_path: Path) -> None:
    import hashlib

    from mgt.compile import load_machine

    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "Out.json").write_text('{"type": "object"}')
    (tmp_path / "grandchild.mgt").write_text(
        'machine grandchild\n\nimport schemas from "schemas"\n\nstate s:\n'
        '    run command "echo {}"\n    output Out\n    on done -> ok\n\nfinal ok: succeed\n')
    (tmp_path / "child.mgt").write_text(
        'machine child\n\nstate s:\n    run machine "grandchild.mgt"\n    on done -> ok\n'
        '    on error -> ok\n\nfinal ok: succeed\n')
    (tmp_path / "parent.mgt").write_text(
        'machine parent\n\nstate s:\n    branch a:\n        run machine "child.mgt"\n'
        '    branch b:\n        run command "true"\n    on done -> ok\n    on error -> ok\n\n'
        "final ok: succeed\n")
    pinned = load_machine(str(tmp_path / "parent.mgt")).definitions

    def sha(name: str) -> str:
        return hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()

    assert pinned == {str((tmp_path / name).resolve()): sha(name)
                      for name in ("child.mgt", "grandchild.mgt", "schemas/Out.json")}
