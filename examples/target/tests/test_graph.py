"""The bundled graph builds cleanly, and the validator catches the mistakes it exists for."""

from __future__ import annotations

import shutil
import tempfile
import unittest
from pathlib import Path

from dmgraph import GraphSyntaxError, parse_graph, validate

ROOT = Path(__file__).resolve().parents[1]


def errors(graph_text: str, root: Path = ROOT) -> list[str]:
    graph = parse_graph(graph_text, "test.graph")
    return [p.message for p in validate(graph, root) if p.severity == "error"]


class BundledGraphTest(unittest.TestCase):
    def setUp(self) -> None:
        self.text = (ROOT / "graph" / "dm.graph").read_text(encoding="utf-8")
        self.graph = parse_graph(self.text, "graph/dm.graph")

    def test_builds_without_errors(self) -> None:
        self.assertEqual(errors(self.text), [])

    def test_every_llm_node_has_a_template_and_a_timeout(self) -> None:
        for node in self.graph.nodes.values():
            if node.kind == "llm":
                self.assertTrue((ROOT / node.attrs["template"]).is_file(), node.name)
                self.assertIsNotNone(node.timeout_ms, node.name)

    def test_error_node_recovers_into_the_scene(self) -> None:
        triggers = {(e.source, e.trigger): e.target for e in self.graph.edges}
        self.assertEqual(triggers[("dmAction", "failure")], "dmError")
        self.assertEqual(triggers[("dmError", "recover")], "dmScene")

    def test_legacy_recap_is_only_a_warning(self) -> None:
        warnings = [p.message for p in validate(self.graph, ROOT) if p.severity == "warning"]
        self.assertIn("node dmLegacyRecap is unreachable from dmIntake", warnings)


class ValidatorTest(unittest.TestCase):
    HEAD = "graph g start=a\n"

    def test_dangling_edge(self) -> None:
        found = errors(self.HEAD + "node a logic\nedge a -> ghost on success\n")
        self.assertIn("edge a -> ghost: no node named ghost", found)

    def test_missing_template(self) -> None:
        found = errors(self.HEAD + "node a llm template=templates/nope.jinja\nfinal a\n")
        self.assertIn("node a: template templates/nope.jinja does not exist", found)

    def test_template_and_inputs_must_agree(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            (root / "t.jinja").write_text("{{ used }} {{ undeclared }}\n", encoding="utf-8")
            found = errors(self.HEAD + "node a llm template=t.jinja inputs=used,stale\nfinal a\n",
                           root)
        self.assertIn("node a: t.jinja uses undeclared, which is not in the node's inputs=", found)
        self.assertIn("node a: declares input stale that t.jinja never uses", found)

    def test_bad_timeout_and_retries(self) -> None:
        found = errors(self.HEAD + "node a tool effect=x timeout=10m\nnode b tool effect=y "
                       "retries=9\nedge a -> b on ok\nfinal b\n")
        self.assertIn("node a: timeout must be within 1ms..120s", found)
        self.assertIn("node b: tool nodes take no retries=", found)

    def test_dead_end_node(self) -> None:
        found = errors(self.HEAD + "node a logic\nnode b logic\nedge a -> b on ok\n")
        self.assertIn("node b has no outgoing edge and is not final", found)

    def test_syntax_errors_carry_the_line(self) -> None:
        with self.assertRaises(GraphSyntaxError) as caught:
            parse_graph(self.HEAD + "node a logic\nedge a => b\n", "x.graph")
        self.assertEqual(caught.exception.line, 3)
        self.assertIn("expected: edge FROM -> TO on TRIGGER", str(caught.exception))

    def test_broken_schema(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            shutil.copytree(ROOT / "templates", root / "templates")
            (root / "s.json").write_text("{not json", encoding="utf-8")
            found = errors(self.HEAD + "node a llm template=templates/dm_summary.jinja "
                           "inputs=session_log schema=s.json\nfinal a\n", root)
        self.assertTrue(any("schema s.json is not JSON" in message for message in found), found)


if __name__ == "__main__":
    unittest.main()
