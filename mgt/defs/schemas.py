"""JSON Schema files (`schemas/*.json`, draft-07 with `$defs`) → a checked `SchemaRegistry`.

Every schema is checked against its metaschema and every `$ref` in it must
resolve when the registry is built, so a broken schema is reported once, at
load, naming its file, instead of at the first output it should have checked.
References work within a file (`#/$defs/Pattern`) and across files, by `$id`
(`https://.../PatternReport.json#/$defs/Pattern`) or by a path relative to the
referring schema (`PatternReport.json#/$defs/Pattern`).
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator, FormatChecker
from jsonschema.exceptions import SchemaError
from jsonschema.exceptions import ValidationError as JsonValidationError
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for
from referencing import Registry, Resource
from referencing._core import Resolver
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT7

from mgt.defs.files import display_path, read_json, require_dir
from mgt.diagnostics import did_you_mean
from mgt.errors import DefinitionError

__all__ = [
    "FORMAT_CHECKER", "SchemaRegistry", "ValidationIssue", "is_date_time", "is_uri", "json_path",
]

#: Formats checked during validation: jsonschema's own, plus `uri` and `date-time` when the
#: optional packages jsonschema uses for them are absent (small stand-ins are supplied here,
#: so validation does not depend on what else happens to be installed).
FORMAT_CHECKER = FormatChecker()

_URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*$")
_DATE_TIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)


def is_uri(value: object) -> bool:
    """RFC 3986 in outline: a scheme, then a host or a path, and no blanks."""
    if not isinstance(value, str):
        return True
    if any(c.isspace() for c in value):
        return False
    parts = urllib.parse.urlsplit(value)
    return bool(parts.scheme and _URI_SCHEME.match(parts.scheme) and (parts.netloc or parts.path))


def is_date_time(value: object) -> bool:
    """RFC 3339 date-time: a date, a time and a required offset (`Z` or `+hh:mm`)."""
    if not isinstance(value, str):
        return True
    if not _DATE_TIME.match(value):
        return False
    try:
        datetime.fromisoformat(re.sub("[Zz]$", "+00:00", value))
    except ValueError:
        return False
    return True


for _name, _check in (("uri", is_uri), ("date-time", is_date_time)):
    if _name not in FORMAT_CHECKER.checkers:
        FORMAT_CHECKER.checks(_name)(_check)


_IDENT = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")


def json_path(parts: Sequence[str | int]) -> str:
    """("patterns", 0, "severity") → "$.patterns[0].severity"."""
    out = "$"
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENT.match(part):
            out += f".{part}"
        else:
            out += "[" + repr(part) + "]"
    return out


@dataclass(frozen=True, slots=True)
class ValidationIssue:
    """One reason an instance fails its schema: where (`$.patterns[0].severity`) and why."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _issue(error: JsonValidationError) -> ValidationIssue:
    message = error.message
    full = repr(error.instance)
    if len(full) > 80 and message.startswith(full):
        message = _short(error.instance) + message[len(full) :]
    if len(message) > 400:
        message = message[:399] + "…"
    return ValidationIssue(json_path(list(error.absolute_path)), message)


class SchemaRegistry:
    """Named JSON Schemas (name = file stem) that validate instances and resolve `$ref`s."""

    def __init__(
        self,
        schemas: Mapping[str, dict[str, Any]],
        paths: Mapping[str, str] | None = None,
    ) -> None:
        """Check every schema and its references; raises DefinitionError naming the file.

        `paths` maps names to the file each came from (for messages and relative refs);
        schemas given without a path get the base URI `urn:mgt:schema:NAME`.
        """
        self._schemas: dict[str, dict[str, Any]] = dict(schemas)
        self._paths: dict[str, str] = dict(paths or {})
        self._uris: dict[str, str] = {}
        self._effective: dict[str, dict[str, Any]] = {}
        self._validators: dict[str, Validator] = {}
        resources: list[tuple[str, Resource[Any]]] = []
        for name, schema in self._schemas.items():
            where = self._paths.get(name, name)
            if not isinstance(schema, dict):
                raise DefinitionError(f"{where}: a schema must be a JSON object")
            try:
                cls = validator_for(schema, default=Draft7Validator)
            except ValueError as e:  # urllib on a malformed URI, e.g. "http://[json-schema.org/"
                raise DefinitionError(
                    f"{where}: $.$schema: not a valid URI ({_short(schema.get('$schema'))}: {e}); "
                    f'write "http://json-schema.org/draft-07/schema#" or leave it out'
                ) from None
            try:
                cls.check_schema(schema)
            except SchemaError as e:
                raise DefinitionError(
                    f"{where}: {json_path(list(e.absolute_path))}: invalid schema: {e.message}"
                ) from None
            file_uri = (
                Path(self._paths[name]).resolve().as_uri()
                if name in self._paths
                else f"urn:mgt:schema:{name}"
            )
            schema_id = schema.get("$id")
            effective = schema if isinstance(schema_id, str) else {**schema, "$id": file_uri}
            self._effective[name] = effective
            self._uris[name] = effective["$id"]
            resource = Resource.from_contents(effective, default_specification=DRAFT7)
            resources.append((file_uri, resource))
            if isinstance(schema_id, str):
                resources.append((schema_id, resource))
        self._registry: Registry[Any] = Registry().with_resources(resources)
        for name in self._schemas:
            try:
                self._check_refs(name)
            except ValueError as e:  # a malformed URI in $id or $ref, from urllib
                raise DefinitionError(f"{self.path(name)}: a malformed URI: {e}") from None

    @classmethod
    def load_dir(cls, directory: str | Path) -> SchemaRegistry:
        """Every `*.json` in `directory`, keyed by file stem."""
        d = require_dir(directory)
        schemas: dict[str, dict[str, Any]] = {}
        paths: dict[str, str] = {}
        for file in sorted(d.glob("*.json")):
            data = read_json(file)
            if not isinstance(data, dict):
                raise DefinitionError(f"{display_path(file)}: a schema must be a JSON object")
            schemas[file.stem] = data
            paths[file.stem] = display_path(file)
        return cls(schemas, paths)

    @classmethod
    def empty(cls) -> SchemaRegistry:
        return cls({})

    # --- lookup -----------------------------------------------------------

    def __contains__(self, name: object) -> bool:
        return name in self._schemas

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._schemas)

    def names(self) -> list[str]:
        return sorted(self._schemas)

    def get(self, name: str) -> dict[str, Any]:
        """The schema as written. Raises KeyError (with a did-you-mean) for an unknown name."""
        try:
            return self._schemas[name]
        except KeyError:
            hint = did_you_mean(name, self._schemas)
            raise KeyError(f"unknown schema '{name}'" + (f" ({hint})" if hint else "")) from None

    def path(self, name: str) -> str:
        """The file a schema came from (or its name when it was given in memory)."""
        return self._paths.get(name, name)

    def title(self, name: str) -> str:
        """The schema's `title`, else its name."""
        title = self.get(name).get("title")
        return title if isinstance(title, str) and title else name

    def uri(self, name: str) -> str:
        """The base URI `$ref`s inside this schema resolve against."""
        self.get(name)
        return self._uris[name]

    def suggest(self, name: str) -> str | None:
        """A `did you mean 'X'?` hint among the known schema names."""
        return did_you_mean(name, self._schemas)

    # --- validation -------------------------------------------------------

    def validator(self, name: str) -> Validator:
        if name not in self._validators:
            schema = self._effective[name] if name in self._effective else self.get(name)
            cls = validator_for(schema, default=Draft7Validator)
            self._validators[name] = cls(
                schema, registry=self._registry, format_checker=FORMAT_CHECKER
            )
        return self._validators[name]

    def validate(self, name: str, instance: Any) -> list[ValidationIssue]:
        """Every reason `instance` fails schema `name`, sorted by path; empty when valid."""
        self.get(name)
        try:
            issues = [_issue(e) for e in self.validator(name).iter_errors(instance)]
        except RecursionError:
            return [ValidationIssue("$", "nested too deeply to validate")]
        return sorted(issues, key=lambda i: (i.path, i.message))

    def is_valid(self, name: str, instance: Any) -> bool:
        return not self.validate(name, instance)

    # --- walking ----------------------------------------------------------

    def resolver(self, name: str) -> Resolver[Any]:
        """A resolver rooted at schema `name`, for following `$ref`s found inside it."""
        return self._registry.resolver(base_uri=self.uri(name))

    @staticmethod
    def deref(
        node: Any, resolver: Resolver[Any], limit: int = 32
    ) -> tuple[Any, Resolver[Any]]:
        """Follow `$ref` until a schema without one; returns it and the resolver for inside it.

        Raises DefinitionError on a cycle of pure references or an unresolvable one.
        """
        for _ in range(limit):
            if not isinstance(node, dict) or not isinstance(node.get("$ref"), str):
                return node, resolver
            try:
                resolved = resolver.lookup(node["$ref"])
            except (Unresolvable, ValueError) as e:  # ValueError: a malformed URI
                raise DefinitionError(f"cannot resolve $ref '{node['$ref']}': {e}") from None
            node, resolver = resolved.contents, resolved.resolver
        raise DefinitionError(f"$ref chain longer than {limit} (a cycle?)")

    def resolve(self, name: str, pointer: str = "") -> Any:
        """The subschema at JSON `pointer` (`/properties/summary`) of `name`, $refs followed."""
        resolver = self.resolver(name)
        try:
            resolved = resolver.lookup(f"{self.uri(name)}#{pointer}")
        except Unresolvable:
            raise KeyError(f"no '{pointer}' in schema '{name}'") from None
        node, _ = self.deref(resolved.contents, resolved.resolver)
        return node

    def property_schema(self, name: str, path: Sequence[str | int]) -> Any | None:
        """The subschema for a value path (`["patterns", 0, "severity"]`), or None if unknown.

        Strings step into `properties`, integers into `items`; `$ref`s are followed.
        """
        node, resolver = self.deref(self.get(name), self.resolver(name))
        for step in path:
            if not isinstance(node, dict):
                return None
            if isinstance(step, int):
                items = node.get("items")
                if not isinstance(items, dict):
                    return None
                node, resolver = self.deref(items, resolver)
            else:
                props = node.get("properties")
                if not isinstance(props, dict) or step not in props:
                    return None
                node, resolver = self.deref(props[step], resolver)
        return node

    def _check_refs(self, name: str) -> None:
        resolver = self.resolver(name)

        def walk(node: Any, at: list[str | int]) -> None:
            if isinstance(node, dict):
                ref = node.get("$ref")
                if isinstance(ref, str):
                    where = f"{self.path(name)}: {json_path([*at, '$ref'])}"
                    try:
                        resolver.lookup(ref)
                    except Unresolvable:
                        raise DefinitionError(f"{where}: cannot resolve '{ref}'") from None
                    except ValueError as e:  # urllib on a malformed URI: "http://[x"
                        raise DefinitionError(
                            f"{where}: cannot resolve '{ref}': not a valid URI ({e})"
                        ) from None
                    try:
                        self.deref(node, resolver)
                    except DefinitionError:
                        raise DefinitionError(
                            f"{where}: '{ref}' only refers to other references (a cycle)"
                        ) from None
                for key, value in node.items():
                    if key in ("enum", "const", "examples", "default"):
                        continue
                    walk(value, [*at, key])
            elif isinstance(node, list):
                for i, value in enumerate(node):
                    walk(value, [*at, i])

        walk(self._effective[name], [])
