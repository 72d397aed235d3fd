"""The five rules of DESIGN §7, at, one below and one above every threshold."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.analyze.helpers import T, analyze, by_id, error, found, llm, move

# ----------------------------------------------------------------------- slow_llm


def test_slow_llm_needs_min_occurrences_slow_calls() -> None:
    two = analyze([llm(latency=3000)] * 2 + [llm(latency=100)] * 10)
    assert two["patterns"] == []
    three = analyze([llm(latency=3000)] * 3 + [llm(latency=100)] * 10)
    assert found(three) == {("slow-llm-dmscene", "warning", 3)}
    four = analyze([llm(latency=3000)] * 4)
    assert found(four) == {("slow-llm-dmscene", "warning", 4)}


def test_latency_exactly_at_the_warning_threshold_is_slow() -> None:
    assert found(analyze([llm(latency=2000)] * 3)) == {("slow-llm-dmscene", "warning", 3)}
    assert analyze([llm(latency=1999)] * 3)["patterns"] == []
    assert analyze([llm(latency=1999.999)] * 3)["patterns"] == []
    assert found(analyze([llm(latency=2001)] * 3)) == {("slow-llm-dmscene", "warning", 3)}


def test_slow_llm_severity_is_critical_at_a_mean_of_exactly_the_critical_latency() -> None:
    at = analyze([llm(latency=4000), llm(latency=5000), llm(latency=6000)])
    assert found(at) == {("slow-llm-dmscene", "critical", 3)}
    below = analyze([llm(latency=4999), llm(latency=5000), llm(latency=5000)])  # mean 4999.67
    assert found(below) == {("slow-llm-dmscene", "warning", 3)}
    above = analyze([llm(latency=5001)] * 3)
    assert found(above) == {("slow-llm-dmscene", "critical", 3)}


def test_the_mean_is_over_slow_calls_only() -> None:
    # Fast calls at the same node do not dilute the mean: 3 × 6000 ms slow → critical.
    report = analyze([llm(latency=6000)] * 3 + [llm(latency=10)] * 100)
    pattern = by_id(report)["slow-llm-dmscene"]
    assert pattern["severity"] == "critical"
    assert pattern["occurrences"] == 3
    d = pattern["details"]
    assert (d["calls"], d["slow_calls"], d["mean_latency_ms"]) == (103, 3, 6000)
    assert d["all_calls_mean_latency_ms"] == pytest.approx((3 * 6000 + 100 * 10) / 103, abs=0.1)


def test_slow_llm_groups_by_node_and_falls_back_to_model() -> None:
    items = (
        [llm(node="dmScene", model="m1", latency=3000)] * 3
        + [llm(node="dmIntake", model="m1", latency=3000)] * 2
        + [llm(node=None, model="claude-haiku-4-5", latency=3000)] * 3
        + [llm(node="", model="m2", latency=3000)] * 3  # an empty node is no node
        + [llm(node=None, model=None, latency=3000)] * 3
    )
    report = analyze(items)
    patterns = by_id(report)
    assert set(patterns) == {
        "slow-llm-dmscene", "slow-llm-claude-haiku-4-5", "slow-llm-m2", "slow-llm-unknown",
    }
    assert patterns["slow-llm-dmscene"]["details"]["group_by"] == "node"
    assert patterns["slow-llm-dmscene"]["details"]["models"] == {"m1": 3}
    assert patterns["slow-llm-claude-haiku-4-5"]["details"]["model"] == "claude-haiku-4-5"
    assert patterns["slow-llm-claude-haiku-4-5"]["details"]["group_by"] == "model"
    assert patterns["slow-llm-unknown"]["details"]["group_by"] == "none"
    assert 'model = "claude-haiku-4-5"' in patterns["slow-llm-claude-haiku-4-5"]["grafana_query"]


def test_slow_llm_details_and_query() -> None:
    latencies = [2000, 2500, 3000, 8000, 4000, 100]
    report = analyze([llm(latency=v, prompt=4000, completion=500) for v in latencies])
    p = by_id(report)["slow-llm-dmscene"]
    d = p["details"]
    assert d["slow_calls"] == 5
    assert d["mean_latency_ms"] == 3900
    assert d["p95_latency_ms"] == 8000  # nearest rank: ceil(0.95 × 5) = 5th of 5
    assert d["max_latency_ms"] == 8000
    assert d["prompt_tokens_avg"] == 4000
    assert d["completion_tokens_avg"] == 500
    assert p["grafana_query"] == (
        '{app="tidepool"} |= "llm_call" | json | node = "dmScene" | latency_ms >= 2000'
    )
    # samples: the slowest first, never more than five
    assert [s["event"]["latency_ms"] for s in p["sample_events"]] == [8000, 4000, 3000, 2500, 2000]


def test_slow_llm_thresholds_come_from_the_polecat() -> None:
    t = replace(T, latency_warning_ms=100, latency_critical_ms=150, min_occurrences=2)
    report = analyze([llm(latency=120), llm(latency=200)], thresholds=t)
    assert found(report) == {("slow-llm-dmscene", "critical", 2)}  # mean 160 ≥ 150


# -------------------------------------------------------------- failed_transition


def _leaving(source: str, failures: int, others: int, to: str = "dmError") -> list[dict[str, str]]:
    return [move(source, to)] * failures + [move(source, "dmDice")] * others


def test_failed_transition_needs_min_occurrences() -> None:
    assert analyze(_leaving("dmAction", 2, 0))["patterns"] == []
    assert found(analyze(_leaving("dmAction", 3, 0))) == {
        ("failed-transition-dmaction-dmerror", "critical", 3)
    }


@pytest.mark.parametrize(
    ("failures", "others", "severity"),
    [
        (3, 17, "critical"),  # 3/20 = 0.15 exactly
        (3, 18, "warning"),  # 3/21 ≈ 0.143
        (4, 20, "critical"),  # 4/24 ≈ 0.167
        (3, 57, "warning"),  # 3/60 = 0.05 exactly
        (3, 58, "info"),  # 3/61 ≈ 0.049
        (5, 95, "warning"),  # 5/100 = 0.05 exactly
        (15, 85, "critical"),  # 15/100 = 0.15 exactly
        (14, 86, "warning"),
    ],
)
def test_failed_transition_severity_by_rate(failures: int, others: int, severity: str) -> None:
    report = analyze(_leaving("dmAction", failures, others))
    assert found(report) == {("failed-transition-dmaction-dmerror", severity, failures)}
    d = report["patterns"][0]["details"]
    assert (d["from"], d["to"], d["count"], d["transitions_from"]) == (
        "dmAction", "dmError", failures, failures + others,
    )
    assert d["rate"] == round(failures / (failures + others), 4)


@pytest.mark.parametrize("to", ["dmError", "ERROR", "onFailure", "payment_FAILED", "xerrorx"])
def test_failure_nodes_contain_error_or_fail_in_any_case(to: str) -> None:
    report = analyze([move("a", to)] * 3)
    assert [p["type"] for p in report["patterns"]] == ["failed_transition"]
    assert report["patterns"][0]["details"]["to"] == to


@pytest.mark.parametrize("to", ["dmErr", "dmScene", "fai-led", "e r r o r"])
def test_other_nodes_are_not_failures(to: str) -> None:
    assert analyze([move("a", to)] * 10)["patterns"] == []


def test_rate_counts_every_transition_leaving_the_source() -> None:
    # From dmAction: 3 to dmError, 3 to dmFailSafe, 14 elsewhere → each 3/20 = 0.15.
    items = [move("dmAction", "dmError")] * 3 + [move("dmAction", "dmFailSafe")] * 3
    items += [move("dmAction", "dmDice")] * 14
    items += [move("dmScene", "dmAction")] * 100  # transitions *into* dmAction do not count
    report = analyze(items)
    assert found(report) == {
        ("failed-transition-dmaction-dmerror", "critical", 3),
        ("failed-transition-dmaction-dmfailsafe", "critical", 3),
    }
    for p in report["patterns"]:
        assert p["details"]["transitions_from"] == 20
        assert p["grafana_query"].endswith(f'| from = "dmAction" | to = "{p["details"]["to"]}"')


def test_failed_transitions_are_per_pair() -> None:
    items = _leaving("dmAction", 3, 0) + _leaving("dmScene", 2, 0)
    assert [p["id"] for p in analyze(items)["patterns"]] == ["failed-transition-dmaction-dmerror"]


# ------------------------------------------------------------------ repeated_error


def _parse_errors(n: int) -> list[dict[str, str]]:
    return [
        error(f"Failed to parse SceneNarrative: missing field 'mood' at offset {1000 + 7 * i}")
        for i in range(n)
    ]


REPEATED_ID = "repeated-error-failed-to-parse-scenenarrative-missing-field-mood-at-offset"


@pytest.mark.parametrize(
    ("count", "expected"),
    [(2, None), (3, "warning"), (4, "warning"), (14, "warning"), (15, "critical"),
     (16, "critical")],
)
def test_repeated_error_thresholds(count: int, expected: str | None) -> None:
    report = analyze(_parse_errors(count))
    if expected is None:
        assert report["patterns"] == []
    else:
        assert found(report) == {(REPEATED_ID, expected, count)}


def test_repeated_error_critical_factor_follows_min_occurrences() -> None:
    t = replace(T, min_occurrences=2)
    assert found(analyze(_parse_errors(9), thresholds=t)) == {(REPEATED_ID, "warning", 9)}
    assert found(analyze(_parse_errors(10), thresholds=t)) == {(REPEATED_ID, "critical", 10)}


def test_messages_group_by_template() -> None:
    items = [
        error("Session 3fa85f64-5717-4562-b3fc-2c963f66afa6 expired"),
        error("Session 9b2e1c3d-0000-4aaa-8bbb-123456789abc expired"),
        error("Session 00000000-1111-2222-3333-444444444444 expired"),
        error("Timeout after 30 s calling tool 0x7f3a"),
        error("Timeout after 45 s calling tool 0xdeadBEEF"),
        error("Timeout after 5 s calling tool 0x1"),
        error("Cache miss for key a1b2c3d4e5"),
        error("Cache miss for key ffee00112233"),
        error("Cache miss for key 9f9f9f"),
        error("Cache   miss\tfor key 0a0a0a0a"),  # whitespace is collapsed too
    ]
    report = analyze(items)
    templates = {p["details"]["template"]: p["occurrences"] for p in report["patterns"]}
    assert templates == {
        "Session <uuid> expired": 3,
        "Timeout after <n> s calling tool <hex>": 3,
        "Cache miss for key <hex>": 4,
    }


def test_words_are_not_masked() -> None:
    # "facade" and "decade" are hex letters but no ids; different words → different templates
    items = [error("facade broke")] * 2 + [error("decade broke")] * 2
    assert analyze(items)["patterns"] == []


def test_repeated_error_details_and_contexts() -> None:
    items = [
        error("Boom 1", context="dmScene", timestamp="2026-01-15T10:00:00Z"),
        error("Boom 2", context={"node": "dmScene"}, timestamp="2026-01-15T09:00:00Z"),
        error("Boom 3", context="dmAction", timestamp="2026-01-15T11:00:00Z"),
    ]
    p = analyze(items)["patterns"][0]
    assert p["id"] == "repeated-error-boom"
    d = p["details"]
    assert d["template"] == "Boom <n>"
    assert d["contexts"] == {"dmScene": 2, "dmAction": 1}
    assert d["first_seen"].startswith("2026-01-15T09:00:00")
    assert d["last_seen"].startswith("2026-01-15T11:00:00")
    # the first five in stream order are the samples
    assert [s["event"]["message"] for s in p["sample_events"]] == ["Boom 1", "Boom 2", "Boom 3"]
    assert 'message =~ "Boom [0-9]+"' in p["grafana_query"]


def test_long_templates_that_share_a_prefix_get_distinct_ids() -> None:
    prefix = "Validation failed for the dungeon master scene narrative output because field"
    items = [error(f"{prefix} mood is missing")] * 3 + [error(f"{prefix} npcs is missing")] * 3
    ids = [p["id"] for p in analyze(items)["patterns"]]
    assert len(set(ids)) == 2
    assert all(i.startswith("repeated-error-validation-failed-for-the-dungeon") for i in ids)


# --------------------------------------------------------------------- token_bloat


def test_token_bloat_boundaries() -> None:
    bloated = llm(prompt=3000, completion=300)  # exactly 3000 and exactly 10×
    assert found(analyze([bloated] * 3)) == {("token-bloat-dmscene", "info", 3)}
    assert analyze([bloated] * 2)["patterns"] == []
    assert analyze([llm(prompt=2999, completion=10)] * 5)["patterns"] == []  # prompt one below
    assert analyze([llm(prompt=3000, completion=301)] * 5)["patterns"] == []  # ratio just < 10
    assert found(analyze([llm(prompt=3010, completion=301)] * 3)) == {
        ("token-bloat-dmscene", "info", 3)
    }
    assert found(analyze([llm(prompt=3000, completion=0)] * 3)) == {
        ("token-bloat-dmscene", "info", 3)
    }


def test_token_bloat_is_a_warning_at_a_mean_prompt_of_6000() -> None:
    at = [llm(prompt=5000, completion=1), llm(prompt=6000, completion=1),
          llm(prompt=7000, completion=1)]
    assert found(analyze(at)) == {("token-bloat-dmscene", "warning", 3)}
    below = [llm(prompt=5999, completion=1), llm(prompt=6000, completion=1),
             llm(prompt=6000, completion=1)]
    assert found(analyze(below)) == {("token-bloat-dmscene", "info", 3)}
    above = [llm(prompt=6500, completion=300)] * 3
    report = analyze(above)
    assert found(report) == {("token-bloat-dmscene", "warning", 3)}
    d = report["patterns"][0]["details"]
    figures = (d["bloated_calls"], d["prompt_tokens_avg"], d["completion_tokens_avg"])
    assert figures == (3, 6500, 300)


def test_token_bloat_only_counts_bloated_calls() -> None:
    items = [llm(prompt=6500, completion=300)] * 3 + [llm(prompt=6500, completion=3000)] * 50
    p = analyze(items)["patterns"][0]
    assert (p["occurrences"], p["details"]["calls"]) == (3, 53)


def test_slow_and_bloated_calls_give_two_patterns() -> None:
    report = analyze([llm(latency=6000, prompt=6500, completion=300)] * 3)
    assert found(report) == {
        ("slow-llm-dmscene", "critical", 3),
        ("token-bloat-dmscene", "warning", 3),
    }


# ------------------------------------------------------------------------ dead_path


NODES = ["dmIntake", "dmScene", "dmLegacyRecap", "dmError"]


def test_dead_paths_are_known_nodes_never_entered() -> None:
    items = [llm(node="dmIntake"), move("dmIntake", "dmScene"), move("dmScene", "dmError")]
    report = analyze(items, nodes=NODES)
    assert found(report) == {("dead-path-dmlegacyrecap", "info", 1)}
    p = report["patterns"][0]
    assert p["details"]["node"] == "dmLegacyRecap"
    assert "dmLegacyRecap" in p["grafana_query"]


def test_entering_as_llm_call_node_or_transition_target_counts() -> None:
    only_llm = analyze([llm(node="dmLegacyRecap")], nodes=["dmLegacyRecap"])
    assert only_llm["patterns"] == []
    only_to = analyze([move("x", "dmLegacyRecap")], nodes=["dmLegacyRecap"])
    assert only_to["patterns"] == []
    # leaving a node, or naming it in another field, is not entering it
    only_from = analyze([move("dmLegacyRecap", "x"), error("dmLegacyRecap broke")],
                        nodes=["dmLegacyRecap"])
    assert found(only_from) == {("dead-path-dmlegacyrecap", "info", 1)}


def test_no_dead_paths_without_known_nodes() -> None:
    assert analyze([move("a", "b")])["patterns"] == []


def test_every_node_is_dead_when_there_are_no_events() -> None:
    report = analyze([], nodes=["a", "b"])
    assert found(report) == {("dead-path-a", "info", 1), ("dead-path-b", "info", 1)}
    assert report["summary"]["events_analyzed"] == 0
    assert "query_range" not in report["summary"]


# ------------------------------------------------------------------ min / rule set


def test_min_occurrences_applies_to_every_counted_rule() -> None:
    items = (
        [llm(latency=6000, prompt=6500, completion=300)] * 5
        + _leaving("dmAction", 5, 5)
        + _parse_errors(5)
    )
    assert len(analyze(items)["patterns"]) == 4
    assert analyze(items, thresholds=replace(T, min_occurrences=6))["patterns"] == []
    assert len(analyze(items, thresholds=replace(T, min_occurrences=5))["patterns"]) == 4


def test_rules_argument_restricts_the_report() -> None:
    items = [llm(latency=6000, prompt=6500, completion=300)] * 3 + _leaving("dmAction", 3, 0)
    report = analyze(items, rules=["failed_transition"])
    assert [p["type"] for p in report["patterns"]] == ["failed_transition"]
    assert report["summary"]["rules"] == ["failed_transition"]
    assert report["summary"]["events_analyzed"] == 6


def test_a_transition_with_an_unusable_target_still_leaves_its_source() -> None:
    items = [*_leaving("dmAction", 3, 16), {"type": "graph_transition", "from": "dmAction"}]
    report = analyze(items)  # 3 of 20 = 0.15, not 3 of 19
    assert found(report) == {("failed-transition-dmaction-dmerror", "critical", 3)}
    assert report["patterns"][0]["details"]["transitions_from"] == 20
    assert report["summary"]["ignored"] == 1


def test_very_long_known_node_names_still_match_their_events() -> None:
    long = "dm" + "X" * 500
    assert analyze([move("a", long)], nodes=[long])["patterns"] == []
    assert len(analyze([move("a", "b")], nodes=[long])["patterns"]) == 1
