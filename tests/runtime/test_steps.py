"""Steps resolved when lowering, run by one runner per kind, with the extension tables the
run is given (not only the module's)."""

from __future__ import annotations

from pathlib import Path

from mgt.compile import load_machine
from mgt.compile.model import BuiltinStep, CommandStep, FormulaStep, PolecatStep, step_of
from mgt.runtime.interpreter import Extensions, Interpreter
from mgt.runtime.journal import RunJournal
from tests.runtime.build import ROOT, builtin, command, executors, machine, on


def test_lowering_looks_up_what_each_state_runs() -> None:
    m = load_machine(ROOT / "machines" / "evolve.mgt")
    steps = {name: spec.step for name, spec in m.states.items()}
    assert all(step is not None for step in steps.values())
    refine = steps["refine"]
    assert isinstance(refine, FormulaStep)
    assert refine.formula is m.formulas["refine"]
    assert refine.polecat is m.polecats[refine.formula.polecat]
    assert {type(s) for s in steps.values()} <= {FormulaStep, BuiltinStep}
    assert isinstance(steps["analyze"], BuiltinStep) and steps["analyze"].name == "analyze-logs"


def test_a_hand_built_state_is_resolved_the_same_way() -> None:
    m = machine(builtin("a", on("done", "b"), step="count"),
                command("b", "true", on("done", "ok")))
    assert step_of(m.states["a"], m.polecats, m.formulas) == BuiltinStep("count")
    assert step_of(m.states["b"], m.polecats, m.formulas) == CommandStep("true")
    spec = m.states["a"]
    from dataclasses import replace

    from mgt.compile.model import RunSpec

    polecat = replace(spec, run=RunSpec("polecat", "nobody", prompt="hi"))
    assert step_of(polecat, {}, {}) == PolecatStep("nobody", None, "hi")


def test_the_builtins_a_run_is_given_are_the_ones_it_uses(tmp_path: Path) -> None:
    m = machine(builtin("a", on("done", "ok"), on("error", "bad"), step="count"))
    own = Extensions(builtins={"count": "tests.runtime.steps:count"}, output_checks={},
                     prompt_context={})
    with RunJournal.create(tmp_path, "given") as journal:
        given = Interpreter(m, journal, {}, executors=executors(), cwd=tmp_path,
                            extensions=own).start()
    assert (given.final, given.outputs["a"]["calls"]) == ("ok", 1)
    with RunJournal.create(tmp_path, "module") as journal:  # the module table has no `count`
        default = Interpreter(m, journal, {}, executors=executors(), cwd=tmp_path).start()
    assert default.final == "bad"
