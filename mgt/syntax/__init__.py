"""The .mgt syntax: source text → `mgt.ast.MachineDecl` (lark stays inside this package)."""

from mgt.syntax.parser import normalize, parse_errors, parse_file, parse_source, read_source

__all__ = ["normalize", "parse_errors", "parse_file", "parse_source", "read_source"]
