"""Graph checks through the public API: reachability, dead ends and 'surely finished' outputs."""

from __future__ import annotations

from mgt.check import check_source


def messages(source: str) -> list[str]:
    result = check_source("machine m\n" + source, "m.mgt")
    return [d.message for d in result.diagnostics if d.is_error]


def cmd(name: str, *transitions: str, with_: str = "") -> str:
    lines = [f"state {name}:", '    run command "true"']
    if with_:
        lines.append(f"    with {with_}")
    lines += [f"    {t}" for t in transitions]
    lines += ["    on timeout -> end", "    on error -> end"] if "on error" not in " ".join(
        transitions
    ) else []
    return "\n".join(lines) + "\n"


END = "final end: succeed\n"


def test_output_read_after_a_diamond_needs_both_branches_to_run_it() -> None:
    # a → (b | c) → d: d may read a.output (a always finished) but not b.output.
    source = (
        cmd("a", "on done when output.exit_code == 0 -> b", "on done -> c")
        + cmd("b", "on done -> d")
        + cmd("c", "on done -> d")
        + cmd("d", "on done -> end", with_="x = a.output.stdout, y = b.output.stdout")
        + END
    )
    assert messages(source) == [
        "'b.output' may not exist here: state 'd' can be reached without 'b' finishing with "
        "done (a on done -> c on done -> d)"
    ]


def test_output_of_a_state_in_a_loop() -> None:
    # a → b → a: when b reads a.output, a has finished; a reading b.output on its first
    # visit has not.
    source = (
        cmd("a", "on done -> b", with_="prev = b.output")
        + cmd("b", "on done when b.attempts > 3 -> end", "on done -> a", with_="x = a.output")
        + END
    )
    assert messages(source) == [
        "'b.output' may not exist here: state 'a' can be reached without 'b' finishing with "
        "done (a)"
    ]


def test_a_failure_edge_does_not_produce_output() -> None:
    source = (
        cmd("a", "on done -> b", "on error -> b")
        + cmd("b", "on done -> end", with_="x = a.output")
        + END
    )
    assert messages(source) == [
        "'a.output' may not exist here: state 'b' can be reached without 'a' finishing with "
        "done (a on error -> b)"
    ]


def test_own_output_in_a_done_guard_is_fine_elsewhere_not() -> None:
    source = cmd("a", "on done when a.output.exit_code == 0 -> end", "on done -> end") + END
    assert messages(source) == []
    source = (
        'state a:\n    run command "x"\n    on done -> end\n'
        "    on timeout when a.output.exit_code == 0 -> end\n    on error -> end\n" + END
    )
    assert messages(source) == [
        "'a.output' does not exist after 'timeout'; only 'on done' guards can read this "
        "state's output"
    ]


def test_unreachable_states_are_not_also_reported_as_dead_ends() -> None:
    source = cmd("a", "on done -> end") + cmd("island", "on done -> island") + END
    assert messages(source) == [
        "state 'island' is unreachable: no transition leads to it from the start state 'a'"
    ]


def test_a_cycle_with_an_exit_reaches_a_final() -> None:
    source = (
        cmd("a", "on done -> b")
        + cmd("b", "on done when b.attempts < 3 -> a", "on done -> end")
        + END
    )
    assert messages(source) == []


def test_start_declaration_changes_what_is_reachable() -> None:
    source = "start b\n" + cmd("a", "on done -> end") + cmd("b", "on done -> end") + END
    assert messages(source) == [
        "state 'a' is unreachable: no transition leads to it from the start state 'b'"
    ]


def test_a_long_chain_checks_quickly_and_cleanly() -> None:
    n = 300
    parts = [
        cmd(f"s{i}", f"on done -> {'s' + str(i + 1) if i + 1 < n else 'end'}",
            with_=f"x = s{max(i - 1, 0)}.output.stdout" if i > 0 else "")
        for i in range(n)
    ]
    assert messages("".join(parts) + END) == []
