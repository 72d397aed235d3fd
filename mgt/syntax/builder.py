"""Grammar reductions (lark tokens and child nodes) → the frozen dataclasses of `mgt.ast`.

This runs *inside* the LALR parser (lark's inline transformer): every rule is
turned into its node as soon as it is reduced, so no parse tree is built and
nothing here recurses, however deep the input nests. Spans are unions of the
children's spans; keyword tokens are kept by the grammar so a node's span starts
at its keyword. Expression depth is bounded here so later stages (which do
recurse) never meet an expression deeper than `MAX_DEPTH`.
"""

from __future__ import annotations

import math
import re
import textwrap
from dataclasses import dataclass, replace
from typing import Any

from lark import Token, Transformer

from mgt import ast
from mgt.errors import ParseError
from mgt.expr import nodes as ex
from mgt.span import Span

__all__ = ["MAX_DEPTH", "Builder"]

#: Deepest expression tree accepted (`not not ... x`, `a.b.c...`, `a + b + ...`).
MAX_DEPTH = 100

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_ESCAPE = re.compile(r"\\(u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}|\n|.)", re.DOTALL)
_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", '"': '"', "'": "'"}


@dataclass(frozen=True, slots=True)
class Text:
    """A string literal: its decoded value and where it was written."""

    value: str
    span: Span


@dataclass(frozen=True, slots=True)
class _Prefixed:
    """An operand with `not`/`-` before it, waiting for `expr` to apply precedence."""

    prefixes: tuple[Token, ...]
    operand: ex.Expr


_COMPARISON = 4
# `??` binds tighter than comparisons and looser than arithmetic (as in Swift and Kotlin):
# `output.n ?? 0 > 3` is `(output.n ?? 0) > 3`, `a ?? b + 1` is `a ?? (b + 1)`.
_PRECEDENCE = {
    "or": 1, "and": 2, "not": 3,
    "==": _COMPARISON, "!=": _COMPARISON, "<": _COMPARISON, "<=": _COMPARISON,
    ">": _COMPARISON, ">=": _COMPARISON, "in": _COMPARISON, "not in": _COMPARISON,
    "??": 5, "+": 6, "-": 6, "*": 7, "/": 7, "neg": 8,
}


def _op_text(node: ex.Expr) -> str:
    if isinstance(node, ex.Binary):
        return node.op
    return "not in"


@dataclass(frozen=True, slots=True)
class _Header:
    name: ast.Ident
    description: str | None
    span: Span


@dataclass(frozen=True, slots=True)
class _Start:
    state: ast.Ident
    span: Span


@dataclass(frozen=True, slots=True)
class _Clause:
    kind: str  # run | with | output | timeout | retry | on
    value: Any
    keyword: Span  # the clause's keyword, for "second 'run' clause" errors
    span: Span  # the whole clause


Spanned = Token | Text | ast.Ident | ast.TypeRef | ast.Binding | ex.Literal | ex.DurationLit | Any


class Builder(Transformer[Token, Any]):
    """Inline transformer for the .mgt grammar; `file` names the source in every span."""

    def __init__(self) -> None:
        super().__init__(visit_tokens=False)
        self.file = "<source>"
        self._depth: dict[int, int] = {}

    def reset(self, file: str) -> None:
        self.file = file
        self._depth = {}

    # ---- spans -----------------------------------------------------------

    def span(self, first: Any, last: Any = None) -> Span:
        """From the start of `first` to the end of `last` (tokens or nodes with a span)."""
        # Every token of mgt.syntax.lexer carries all four positions.
        if last is None:
            last = first
        start: Any = first if type(first) is Token else first.span
        stop: Any = last if type(last) is Token else last.span
        return Span(self.file, start.line, start.column, stop.end_line, stop.end_column)

    def ident(self, token: Token) -> ast.Ident:
        return ast.Ident(str(token), self.span(token))

    def fail(self, message: str, where: Spanned, last: Spanned | None = None) -> ParseError:
        return ParseError(message, self.span(where, last))

    # ---- declarations ----------------------------------------------------

    def start(self, children: list[Any]) -> ast.MachineDecl:
        header: _Header = children[0]
        imports: list[ast.Import] = []
        inputs: list[ast.InputDecl] = []
        states: list[ast.State] = []
        finals: list[ast.Final] = []
        start: _Start | None = None
        for decl in children[1:]:
            if isinstance(decl, ast.Import):
                imports.append(decl)
            elif isinstance(decl, ast.InputDecl):
                inputs.append(decl)
            elif isinstance(decl, ast.State):
                states.append(decl)
            elif isinstance(decl, ast.Final):
                finals.append(decl)
            elif isinstance(decl, _Start):
                if start is not None:
                    raise self.fail(
                        f"a second 'start' declaration; the machine already starts at "
                        f"'{start.state.text}' (line {start.span.line})",
                        decl,
                    )
                start = decl
        last = children[-1]
        return ast.MachineDecl(
            name=header.name,
            description=header.description,
            imports=tuple(imports),
            inputs=tuple(inputs),
            start=start.state if start else None,
            states=tuple(states),
            finals=tuple(finals),
            source_path=self.file,
            span=self.span(header, last),
        )

    def machine_decl(self, children: list[Any]) -> _Header:
        keyword, name, text = children
        description = text.value if text is not None else None
        return _Header(self.ident(name), description, self.span(keyword, text or name))

    def import_decl(self, children: list[Any]) -> ast.Import:
        keyword, kind, path = children
        return ast.Import(self.ident(kind), path.value, path.span, self.span(keyword, path))

    def input_decl(self, children: list[Any]) -> ast.InputDecl:
        keyword, name, type_ref, default = children
        end = default if default is not None else type_ref
        return ast.InputDecl(self.ident(name), type_ref, default, self.span(keyword, end))

    def simple_type(self, children: list[Any]) -> ast.TypeRef:
        (name,) = children
        return ast.TypeRef(self.ident(name), (), self.span(name))

    def enum_type(self, children: list[Any]) -> ast.TypeRef:
        keyword, *values, close = children
        return ast.TypeRef(
            self.ident(keyword), tuple(v.value for v in values), self.span(keyword, close)
        )

    def start_decl(self, children: list[Any]) -> _Start:
        keyword, name = children
        return _Start(self.ident(name), self.span(keyword, name))

    def final_decl(self, children: list[Any]) -> ast.Final:
        keyword, name, status, message, _returns, value = children
        return ast.Final(
            self.ident(name),
            "succeed" if status.type == "SUCCEED" else "fail",
            message.value if message is not None else None,
            self.span(keyword, value or message or status),
            returns=value,
        )

    def final_status(self, children: list[Any]) -> Token:
        token: Token = children[0]
        return token

    def state_decl(self, children: list[Any]) -> ast.State:
        keyword, name, *clauses = children
        run: ast.Run | None = None
        output: ast.Ident | None = None
        timeout: ex.DurationLit | None = None
        bindings: list[ast.Binding] = []
        retries: list[ast.Retry] = []
        transitions: list[ast.On] = []
        seen: dict[str, Span] = {}
        fan_out: ast.FanOut | None = None
        policy: dict[str, _Clause] = {}
        branches: list[ast.Branch] = []
        branch_names: dict[str, Span] = {}
        for clause in clauses:
            if clause.kind in ("run", "output", "timeout", "for", "tolerate", "cancel"):
                if clause.kind in seen:
                    first = seen[clause.kind]
                    raise ParseError(
                        f"state '{name}' has a second '{clause.kind}' clause "
                        f"(the first is on line {first.line}); a state has at most one",
                        clause.keyword,
                    )
                seen[clause.kind] = clause.keyword
            if clause.kind == "run":
                run = clause.value
            elif clause.kind == "output":
                output = clause.value
            elif clause.kind == "timeout":
                timeout = clause.value
            elif clause.kind == "with":
                bindings.extend(clause.value)
            elif clause.kind == "retry":
                retries.append(clause.value)
            elif clause.kind == "for":
                fan_out = clause.value
            elif clause.kind == "branch":
                branch: ast.Branch = clause.value
                if branch.name.text in branch_names:
                    raise ParseError(
                        f"state '{name}' has two branches named '{branch.name.text}' (the "
                        f"first is on line {branch_names[branch.name.text].line})",
                        branch.name.span)
                branch_names[branch.name.text] = branch.name.span
                branches.append(branch)
            elif clause.kind in ("tolerate", "cancel"):
                policy[clause.kind] = clause
            else:
                transitions.append(clause.value)
        if branches and (run is not None or fan_out is not None):
            raise ParseError(
                f"state '{name}' has branches and a '{'run' if run is not None else 'for'}' "
                "clause; a state runs one step, a fan-out, or branches", branches[0].span)
        if policy and fan_out is None and not branches:
            clause = next(iter(policy.values()))
            raise ParseError(
                f"'{clause.kind}' is a failure policy of a fan-out or of branches; state "
                f"'{name}' has no 'for ITEM in LIST' clause and no branches",
                clause.keyword,
            )
        if fan_out is not None and policy:
            tolerate = policy.get("tolerate")
            fan_out = replace(
                fan_out,
                tolerate=tolerate.value[0] if tolerate else 0,
                tolerate_span=tolerate.value[1] if tolerate else None,
                cancel_on_failure="cancel" in policy,
            )
        return ast.State(
            name=self.ident(name),
            run=run,
            bindings=tuple(bindings),
            output=output,
            timeout=timeout,
            retries=tuple(retries),
            transitions=tuple(transitions),
            span=self.span(keyword, clauses[-1]),
            fan_out=fan_out,
            branches=tuple(branches),
            tolerate=policy["tolerate"].value[0] if "tolerate" in policy and branches else 0,
            cancel_on_failure="cancel" in policy and bool(branches),
        )

    # ---- clauses ---------------------------------------------------------

    def _run(self, keyword: Token, kind: ast.RunKind, last: Spanned, **fields: Any) -> _Clause:
        run = ast.Run(
            kind=kind,
            target=fields.get("target"),
            prompt=fields.get("prompt"),
            command=fields.get("command"),
            span=self.span(keyword, last),
        )
        return _Clause("run", run, self.span(keyword), run.span)

    def run_formula(self, children: list[Any]) -> _Clause:
        keyword, _, name = children
        return self._run(keyword, "formula", name, target=self.ident(name))

    def run_polecat(self, children: list[Any]) -> _Clause:
        keyword, _, name, _prompt_kw, prompt = children
        return self._run(
            keyword,
            "polecat",
            prompt or name,
            target=self.ident(name),
            prompt=prompt.value if prompt is not None else None,
        )

    def run_command(self, children: list[Any]) -> _Clause:
        keyword, _, command = children
        return self._run(keyword, "command", command, command=command.value)

    def run_builtin(self, children: list[Any]) -> _Clause:
        keyword, _, name = children
        return self._run(keyword, "builtin", name, target=self.ident(name))

    def run_machine(self, children: list[Any]) -> _Clause:
        keyword, _, path = children
        clause = self._run(keyword, "machine", path)
        run = replace(clause.value, machine=path.value, machine_span=path.span)
        return _Clause("run", run, clause.keyword, clause.span)

    def with_clause(self, children: list[Any]) -> _Clause:
        keyword, *bindings = children
        span = self.span(keyword, bindings[-1])
        return _Clause("with", tuple(bindings), self.span(keyword), span)

    def binding(self, children: list[Any]) -> ast.Binding:
        name, value = children
        return ast.Binding(self.ident(name), value, self.span(name, value))

    def output_clause(self, children: list[Any]) -> _Clause:
        keyword, name = children
        return _Clause("output", self.ident(name), self.span(keyword), self.span(keyword, name))

    def timeout_clause(self, children: list[Any]) -> _Clause:
        keyword, duration = children
        value = self.duration([duration])
        return _Clause("timeout", value, self.span(keyword), self.span(keyword, duration))

    def count(self, children: list[Any]) -> tuple[int, Span]:
        minus, number = children
        text = str(number)
        if not text.isdigit():
            message = f"a retry count is a whole number, not '{text}'"
            raise self.fail(message, minus or number, number)
        value = self._int(text, number)
        return (-value if minus is not None else value), self.span(minus or number, number)

    def retry_clause(self, children: list[Any]) -> _Clause:
        keyword, (count, count_span), _on, *rest = children
        backoff_token = rest.pop()
        rest.pop()  # BACKOFF keyword
        feedback = rest.pop()
        rest.pop()  # WITH keyword
        events = tuple(self.ident(t) for t in rest)
        backoff = self.duration([backoff_token]) if backoff_token is not None else None
        last = backoff_token or feedback or rest[-1]
        retry = ast.Retry(
            count=count,
            count_span=count_span,
            events=events,
            feedback=feedback is not None,
            backoff=backoff,
            span=self.span(keyword, last),
        )
        return _Clause("retry", retry, self.span(keyword), retry.span)

    def on_clause(self, children: list[Any]) -> _Clause:
        keyword, event, _when, guard, _arrow, target = children
        on = ast.On(self.ident(event), guard, self.ident(target), self.span(keyword, target))
        return _Clause("on", on, self.span(keyword), on.span)

    def amount(self, children: list[Any]) -> tuple[int, Span]:
        minus, number = children
        text = str(number)
        if not text.isdigit():
            raise self.fail(f"expected a whole number, not '{text}'", minus or number, number)
        value = self._int(text, number)
        return (-value if minus is not None else value), self.span(minus or number, number)

    def for_clause(self, children: list[Any]) -> _Clause:
        keyword, item, _in, items, _max, amount = children
        last = amount[1] if amount is not None else items.span
        span = Span(self.file, keyword.line, keyword.column, last.end_line, last.end_column)
        fan_out = ast.FanOut(
            item=self.ident(item),
            items=items,
            max=amount[0] if amount is not None else None,
            max_span=amount[1] if amount is not None else None,
            span=span,
        )
        return _Clause("for", fan_out, self.span(keyword), span)

    def branch_clause(self, children: list[Any]) -> _Clause:
        keyword, name, *clauses = children
        run: ast.Run | None = None
        output: ast.Ident | None = None
        timeout: ex.DurationLit | None = None
        bindings: list[ast.Binding] = []
        seen: dict[str, Span] = {}
        for clause in clauses:
            if clause.kind in seen and clause.kind != "with":
                raise ParseError(
                    f"branch '{name}' has a second '{clause.kind}' clause (the first is on "
                    f"line {seen[clause.kind].line})", clause.keyword)
            seen[clause.kind] = clause.keyword
            if clause.kind == "run":
                run = clause.value
            elif clause.kind == "output":
                output = clause.value
            elif clause.kind == "timeout":
                timeout = clause.value
            else:
                bindings.extend(clause.value)
        if run is None:
            raise ParseError(f"branch '{name}' has no 'run' clause", self.span(keyword, name))
        branch = ast.Branch(self.ident(name), run, tuple(bindings), output, timeout,
                            self.span(keyword, clauses[-1]))
        return _Clause("branch", branch, self.span(keyword), branch.span)

    def tolerate_clause(self, children: list[Any]) -> _Clause:
        keyword, (count, count_span), word = children
        if str(word) not in ("failure", "failures"):
            raise self.fail(f"expected 'failures' after 'tolerate {count}', found '{word}'",
                            word)
        if count < 0:
            raise ParseError("a number of tolerated failures cannot be negative", count_span)
        return _Clause("tolerate", (count, count_span), self.span(keyword),
                       self.span(keyword, word))

    def cancel_clause(self, children: list[Any]) -> _Clause:
        keyword, _on, first, failure = children
        if (str(first), str(failure)) != ("first", "failure"):
            raise self.fail(f"expected 'cancel on first failure', found 'cancel on {first} "
                            f"{failure}'", first, failure)
        return _Clause("cancel", True, self.span(keyword), self.span(keyword, failure))

    # ---- expressions -----------------------------------------------------

    def _expr(self, node: ex.Expr, *children: ex.Expr) -> ex.Expr:
        depth = 1 + max((self._depth.get(id(c), 1) for c in children), default=0)
        if depth > MAX_DEPTH:
            raise ParseError(
                f"expression nested too deeply (more than {MAX_DEPTH} levels); split it up",
                node.span,
            )
        self._depth[id(node)] = depth
        return node

    def operand(self, children: list[Any]) -> Any:
        """`not`/`-` prefixes and an operand; the prefixes are applied by `expr`."""
        if len(children) == 1:
            return children[0]
        if len(children) > MAX_DEPTH:
            raise self.fail(
                f"expression nested too deeply (more than {MAX_DEPTH} levels); split it up",
                children[0],
                children[-1],
            )
        return _Prefixed(tuple(children[:-1]), children[-1])

    def expr(self, children: list[Any]) -> ex.Expr:
        """Operands and binary operators in a row → one tree, by precedence (shunting-yard)."""
        first = children[0]
        if len(children) == 1 and not isinstance(first, _Prefixed):
            node: ex.Expr = first
            return node
        out: list[ex.Expr] = []
        ops: list[tuple[int, str, Token]] = []  # (precedence, operator, token)
        comparisons: set[int] = set()  # ids of comparisons made here, to refuse a < b < c
        i = 0
        n = len(children)
        while i < n:
            item = children[i]
            if isinstance(item, _Prefixed):
                for token in item.prefixes:
                    op = "not" if token.type == "NOT" else "neg"
                    ops.append((_PRECEDENCE[op], op, token))
                out.append(item.operand)
            else:
                out.append(item)
            i += 1
            if i == n:
                break
            token = children[i]
            op = str(token)
            i += 1
            if op == "not":  # `not in`: the grammar guarantees the IN follows
                op = "not in"
                i += 1
            precedence = _PRECEDENCE[op]
            while ops and ops[-1][0] >= precedence:
                self._apply(ops.pop(), out, comparisons)
            ops.append((precedence, op, token))
        while ops:
            self._apply(ops.pop(), out, comparisons)
        return out[0]

    def _apply(
        self, op: tuple[int, str, Token], out: list[ex.Expr], comparisons: set[int]
    ) -> None:
        precedence, name, token = op
        if name in ("not", "neg"):
            operand = out.pop()
            out.append(self._unary(token, operand))
            return
        right = out.pop()
        left = out.pop()
        span = self.span(left, right)
        if precedence == _COMPARISON and id(left) in comparisons:
            raise ParseError(
                f"comparisons cannot be chained; write 'a {_op_text(left)} b and b {name} c'",
                span,
            )
        node: ex.Expr
        if name == "not in":
            inner = self._expr(ex.Binary("in", left, right, span), left, right)
            node = self._expr(ex.Unary("not", inner, span), inner)
        else:
            node = self._expr(ex.Binary(name, left, right, span), left, right)  # type: ignore[arg-type]
        if precedence == _COMPARISON:
            comparisons.add(id(node))
        out.append(node)

    def _unary(self, op: Token, operand: ex.Expr) -> ex.Expr:
        if (
            op.type == "MINUS"
            and isinstance(operand, ex.Literal)
            and isinstance(operand.value, int | float)
            and not isinstance(operand.value, bool)
        ):
            # `-3` is a literal, so input defaults and comparisons see a number.
            return self._expr(ex.Literal(-operand.value, self.span(op, operand)))
        node = ex.Unary("not" if op.type == "NOT" else "-", operand, self.span(op, operand))
        return self._expr(node, operand)

    def attr(self, children: list[Any]) -> ex.Expr:
        obj, name = children
        node = ex.Attr(obj, str(name), self.span(obj, name), self.span(name))
        return self._expr(node, obj)

    def index(self, children: list[Any]) -> ex.Expr:
        obj, index, close = children
        return self._expr(ex.Index(obj, index, self.span(obj, close)), obj, index)

    def name(self, children: list[Any]) -> ex.Expr:
        (token,) = children
        return self._expr(ex.Name(str(token), self.span(token)))

    def call(self, children: list[Any]) -> ex.Expr:
        func, args, close = children
        items: tuple[ex.Expr, ...] = args or ()
        node = ex.Call(str(func), items, self.span(func, close), self.span(func))
        return self._expr(node, *items)

    def list_expr(self, children: list[Any]) -> ex.Expr:
        open_, args, close = children
        items: tuple[ex.Expr, ...] = args or ()
        return self._expr(ex.ListExpr(items, self.span(open_, close)), *items)

    def arguments(self, children: list[Any]) -> tuple[ex.Expr, ...]:
        return tuple(children)

    def object_expr(self, children: list[Any]) -> ex.Expr:
        open_, members, close = children
        items: tuple[tuple[Text, ex.Expr], ...] = members or ()
        seen: dict[str, Text] = {}
        for key, _ in items:
            if key.value in seen:
                first = seen[key.value]
                raise ParseError(
                    f'key "{key.value}" appears twice in this object '
                    f"(first at line {first.span.line}, column {first.span.column})",
                    key.span,
                )
            seen[key.value] = key
        node = ex.ObjectExpr(tuple((k.value, v) for k, v in items), self.span(open_, close))
        return self._expr(node, *(v for _, v in items))

    def members(self, children: list[Any]) -> tuple[tuple[Text, ex.Expr], ...]:
        return tuple(children)

    def member(self, children: list[Any]) -> tuple[Text, ex.Expr]:
        key, value = children
        return key, value

    def paren(self, children: list[Any]) -> ex.Expr:
        open_, inner, close = children
        # Widen the span to the brackets so carets cover what the user wrote.
        return self._expr(replace(inner, span=self.span(open_, close)), inner)

    def number(self, children: list[Any]) -> ex.Expr:
        (token,) = children
        text = str(token)
        value: int | float
        if text.isdigit():
            value = self._int(text, token)
        else:
            value = float(text)
            if not math.isfinite(value):
                raise self.fail(f"number '{text}' is too large", token)
        return self._expr(ex.Literal(value, self.span(token)))

    def duration(self, children: list[Any]) -> ex.DurationLit:
        (token,) = children
        text = str(token)
        unit = "ms" if text.endswith("ms") else text[-1]
        amount = self._int(text[: -len(unit)], token)
        node = ex.DurationLit(amount * _UNITS[unit], text, self.span(token))
        self._expr(node)
        return node

    def string(self, children: list[Any]) -> ex.Expr:
        (text,) = children
        return self._expr(ex.Literal(text.value, text.span))

    def true(self, children: list[Any]) -> ex.Expr:
        return self._expr(ex.Literal(True, self.span(children[0])))

    def false(self, children: list[Any]) -> ex.Expr:
        return self._expr(ex.Literal(False, self.span(children[0])))

    def null(self, children: list[Any]) -> ex.Expr:
        return self._expr(ex.Literal(None, self.span(children[0])))

    def text(self, children: list[Any]) -> Text:
        (token,) = children
        raw = str(token)
        if token.type == "LONG_STRING":
            body = raw[3:-3]
            if body.startswith("\n"):
                # A block string: drop the opening newline, the closing line's
                # indentation and the common indentation, like a docstring.
                body = body[1:]
                last_newline = body.rfind("\n")
                if last_newline >= 0 and not body[last_newline + 1 :].strip(" "):
                    body = body[: last_newline + 1]
                body = textwrap.dedent(body)
        else:
            body = raw[1:-1]
        return Text(self._unescape(body, token), self.span(token))

    # ---- helpers ---------------------------------------------------------

    def _unescape(self, body: str, token: Token) -> str:
        if "\\" not in body:
            return body

        def one(match: re.Match[str]) -> str:
            code = match.group(1)
            if code in _SIMPLE_ESCAPES:
                return _SIMPLE_ESCAPES[code]
            if code == "\n":
                return ""  # a backslash at the end of a line joins it to the next
            if code[0] in "uU" and len(code) > 1:
                point = int(code[1:], 16)
                if point > 0x10FFFF or 0xD800 <= point <= 0xDFFF:
                    raise self.fail(f"'\\{code}' is not a valid character", token)
                return chr(point)
            raise self.fail(
                f"unknown escape '\\{code}' in a string (known: \\n \\t \\r \\0 \\\\ \\\" "
                "\\uXXXX); write '\\\\' for a backslash",
                token,
            )

        return _ESCAPE.sub(one, body)

    def _int(self, text: str, token: Token) -> int:
        if len(text) > 18:
            raise self.fail(f"number '{text[:20]}...' is too large", token)
        return int(text)
