"""`import KIND from "DIR"` declarations → loaded polecats, formulas and schemas, and diagnostics.

Directories are relative to the machine file. Each definition file is loaded on
its own so that one broken file is reported (at the import that brought it in)
without hiding the others. Loaded directories are cached for the life of the
process, keyed by the files' names, sizes and modification times, so checking
many machines that share definitions reads them once.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from mgt import ast
from mgt.diagnostics import Diagnostic, did_you_mean
from mgt.errors import MgtError

if TYPE_CHECKING:
    from mgt.defs import Formula, Polecat, SchemaRegistry

__all__ = ["IMPORT_KINDS", "Definitions", "load_imports"]

#: What `import KIND from "DIR"` may import, and the files each kind reads.
IMPORT_KINDS: dict[str, str] = {
    "polecats": "*.toml (not *.formula.toml), keyed by [polecat].name",
    "formulas": "*.formula.toml, keyed by [formula].name",
    "schemas": "*.json, keyed by file stem",
}

T = TypeVar("T")


@dataclass
class Definitions:
    """What a machine imports. `broken` holds names whose file failed to load (no cascades)."""

    polecats: dict[str, Polecat] = field(default_factory=dict)
    formulas: dict[str, Formula] = field(default_factory=dict)
    schemas: SchemaRegistry | None = None
    imported: set[str] = field(default_factory=set)  # kinds with at least one import
    broken: dict[str, set[str]] = field(default_factory=dict)  # kind → file stems that failed

    def is_broken(self, kind: str, name: str) -> bool:
        return name in self.broken.get(kind, set())


@dataclass(frozen=True)
class _Loaded:
    items: dict[str, Any]
    sources: dict[str, str]  # name → file it came from
    problems: tuple[tuple[str, str], ...]  # (file stem, message)
    broken_names: tuple[str, ...] = ()  # names the files that failed declare, when readable


_cache: dict[tuple[str, str, tuple[tuple[str, int, int], ...]], _Loaded] = {}


def load_imports(machine: ast.MachineDecl, base: Path) -> tuple[Definitions, list[Diagnostic]]:
    """Resolve and load every import of `machine`; directories are relative to `base`."""
    defs = Definitions()
    diagnostics: list[Diagnostic] = []
    seen: dict[tuple[str, str], ast.Import] = {}
    schema_data: dict[str, dict[str, Any]] = {}
    schema_paths: dict[str, str] = {}
    origins: dict[tuple[str, str], str] = {}
    for imp in machine.imports:
        kind = imp.kind.text
        if kind not in IMPORT_KINDS:
            hint = did_you_mean(kind, IMPORT_KINDS)
            diagnostics.append(
                Diagnostic.error(
                    f"unknown import kind '{kind}'; a machine imports "
                    + ", ".join(IMPORT_KINDS),
                    imp.kind.span,
                    hint,
                )
            )
            continue
        directory = _resolve(base, imp.path)
        problem = _directory_problem(directory, imp.path)
        if problem is not None:
            diagnostics.append(Diagnostic.error(problem[0], imp.path_span, problem[1]))
            defs.imported.add(kind)
            defs.broken.setdefault(kind, set()).add("*")
            continue
        key = (kind, str(directory.resolve()))
        if key in seen:
            first = seen[key]
            diagnostics.append(
                Diagnostic.error(
                    f"{kind} are already imported from \"{first.path}\" "
                    f"(line {first.kind.span.line})",
                    imp.span,
                )
            )
            continue
        seen[key] = imp
        defs.imported.add(kind)
        loaded = _load_dir(kind, directory)
        for stem, message in loaded.problems:
            defs.broken.setdefault(kind, set()).add(stem)
            diagnostics.append(Diagnostic.error(message, imp.path_span))
        defs.broken.setdefault(kind, set()).update(loaded.broken_names)
        for name, item in loaded.items.items():
            where = loaded.sources[name]
            if (kind, name) in origins:
                diagnostics.append(
                    Diagnostic.error(
                        f"{kind[:-1]} '{name}' is defined in both {origins[kind, name]} and "
                        f"{where}; names must be unique across imports",
                        imp.path_span,
                    )
                )
                continue
            origins[kind, name] = where
            if kind == "polecats":
                defs.polecats[name] = item
            elif kind == "formulas":
                defs.formulas[name] = item
            else:
                schema_data[name] = item
                schema_paths[name] = where
    if "schemas" in defs.imported:
        defs.schemas = _registry(schema_data, schema_paths, machine, diagnostics, defs)
    return defs, diagnostics


def _resolve(base: Path, written: str) -> Path:
    path = Path(os.path.expanduser(written))
    return path if path.is_absolute() else base / path


def _directory_problem(directory: Path, written: str) -> tuple[str, str | None] | None:
    try:
        if directory.is_dir():
            return None
        if directory.exists():
            return f'"{written}" is a file, not a directory', None
    except OSError as err:
        return f'cannot read "{written}": {err.strerror or err}', None
    hint = None
    try:
        siblings = [p.name for p in directory.parent.iterdir() if p.is_dir()]
        close = did_you_mean(directory.name, siblings)
        if close:
            hint = close
    except OSError:
        pass
    return f'no directory "{written}" (import paths are relative to the machine file)', hint


def _fingerprint(files: list[Path]) -> tuple[tuple[str, int, int], ...]:
    marks = []
    for f in files:
        try:
            st = f.stat()
            marks.append((f.name, st.st_size, st.st_mtime_ns))
        except OSError:
            marks.append((f.name, -1, -1))
    return tuple(marks)


def _files(kind: str, directory: Path) -> list[Path]:
    # iterdir, not glob: glob takes a directory it may not read for an empty one
    entries = [p for p in directory.iterdir() if not p.name.startswith(".")]
    if kind == "formulas":
        return sorted(p for p in entries if p.name.endswith(".formula.toml"))
    if kind == "polecats":
        return sorted(
            p for p in entries if p.name.endswith(".toml") and not p.name.endswith(".formula.toml")
        )
    return sorted(p for p in entries if p.name.endswith(".json"))


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".formula.toml", ".toml", ".json"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _declared_name(kind: str, file: Path) -> list[str]:
    """The `[polecat].name` or `[formula].name` of a file that failed to load, if it has one:
    polecats and formulas are keyed by it, not by their file's name."""
    if kind == "schemas":
        return []
    import tomllib

    try:
        with open(file, "rb") as fh:
            table = tomllib.load(fh).get(kind[:-1])
    except (OSError, ValueError, RecursionError):
        return []
    name = table.get("name") if isinstance(table, dict) else None
    return [name] if isinstance(name, str) else []


def _load_dir(kind: str, directory: Path) -> _Loaded:
    try:
        files = _files(kind, directory)
    except OSError as err:
        return _Loaded({}, {}, (("*", f"cannot list {directory}: {err.strerror or err}"),))
    key = (kind, str(directory.resolve()), _fingerprint(files))
    cached = _cache.get(key)
    if cached is not None:
        return cached
    loader = _loader(kind)
    items: dict[str, Any] = {}
    sources: dict[str, str] = {}
    problems: list[tuple[str, str]] = []
    broken_names: list[str] = []
    for file in files:
        try:
            name, item, where = loader(file)
        except MgtError as err:
            problems.append((_stem(file), err.message))
            broken_names += _declared_name(kind, file)
            continue
        except RecursionError:
            problems.append((_stem(file), f"{file.name}: nested too deeply to load"))
            continue
        if name in items:
            problems.append(
                (
                    _stem(file),
                    f"{where}: {kind[:-1]} '{name}' is already defined in {sources[name]}",
                )
            )
            continue
        items[name] = item
        sources[name] = where
    loaded = _Loaded(items, sources, tuple(problems), tuple(broken_names))
    _cache[key] = loaded
    return loaded


def _loader(kind: str) -> Callable[[Path], tuple[str, Any, str]]:
    if kind == "polecats":
        from mgt.defs import load_polecat

        def polecat(file: Path) -> tuple[str, Any, str]:
            p = load_polecat(file)
            return p.name, p, p.path

        return polecat
    if kind == "formulas":
        from mgt.defs import load_formula

        def formula(file: Path) -> tuple[str, Any, str]:
            f = load_formula(file)
            return f.name, f, f.path

        return formula

    from mgt.defs.files import display_path, read_json
    from mgt.errors import DefinitionError

    def schema(file: Path) -> tuple[str, Any, str]:
        data = read_json(file)
        where = display_path(file)
        if not isinstance(data, dict):
            raise DefinitionError(f"{where}: a schema must be a JSON object")
        return file.stem, data, where

    return schema


def _registry(
    data: dict[str, dict[str, Any]],
    paths: dict[str, str],
    machine: ast.MachineDecl,
    diagnostics: list[Diagnostic],
    defs: Definitions,
) -> SchemaRegistry:
    """A registry of every schema that is valid on its own; the broken ones are reported."""
    from mgt.defs import SchemaRegistry

    span = next((i.path_span for i in machine.imports if i.kind.text == "schemas"), None)
    remaining = dict(data)
    for _ in range(len(data) + 1):
        try:
            return SchemaRegistry(remaining, {n: paths[n] for n in remaining})
        except MgtError as err:
            culprit = _culprit(err.message, remaining, paths)
            diagnostics.append(Diagnostic.error(err.message, span))
            if culprit is None:
                break
            defs.broken.setdefault("schemas", set()).add(culprit)
            del remaining[culprit]
        except RecursionError:
            diagnostics.append(Diagnostic.error("a schema is nested too deeply to load", span))
            break
    defs.broken.setdefault("schemas", set()).update(remaining)
    return SchemaRegistry.empty()


def _culprit(message: str, remaining: dict[str, Any], paths: dict[str, str]) -> str | None:
    """The schema a registry error is about (its messages start with the file)."""
    for name in remaining:
        if message.startswith(f"{paths[name]}:") or message.startswith(f"{name}:"):
            return name
    return None

