"""dmgraph: the dungeon-master agent graph, its DSL loader and validator."""

from dmgraph.core.dsl import Edge, Graph, GraphSyntaxError, Node, parse_graph
from dmgraph.validate import Problem, validate

__all__ = ["Edge", "Graph", "GraphSyntaxError", "Node", "Problem", "parse_graph", "validate"]
