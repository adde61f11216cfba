"""The AST visitor that finds environment-variable toggle reads and flag-key uses in one
module (:data:`KEY_FORMS`), following names through imports, aliases and assignments."""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import dataclass

from flagmw.lint.scopes import (
    CLIENT,
    OTHER,
    RC,
    Binding,
    Kind,
    Scope,
    collect,
    is_client_name,
    mark_globals,
)
from flagmw.lint.toggles import is_toggle_name

__all__ = ["KEY_FORMS", "Analyzer"]

#: The code forms whose string-literal key argument is checked against the registry.
KEY_FORMS: tuple[str, ...] = (
    "gated(KEY) / @gated(KEY) / flagmw.gated(KEY)",
    "routed_model(..., flag=KEY, fallbacks=KEY)",
    "rc[KEY], rc.get(KEY), rc.enabled(KEY), rc.get_as(KEY, ...) on a RunConfig",
    "<any>.is_enabled(KEY), <any>.enabled(KEY), is_enabled(KEY)",
    "client.value(KEY), client.explain(KEY), client.kill(KEY), client.override(KEY, ...)",
)


_ENVIRON = frozenset({"os.environ"})
_GETENV = frozenset({"os.getenv"})
_GATED = frozenset({"flagmw.gated", "flagmw.tools.gated", "flagmw.langgraph.tools.gated"})
_ROUTED = frozenset(
    {"flagmw.routed_model", "flagmw.models.routed_model", "flagmw.langgraph.models.routed_model"}
)
_CURRENT = frozenset({"flagmw.current", "flagmw.run.current", "flagmw.langgraph.run.current"})
_RUNCONFIG = frozenset(
    {"flagmw.RunConfig", "flagmw.runconfig.RunConfig", "flagmw.core.runconfig.RunConfig"}
)
_FLAGCLIENT = frozenset({"flagmw.FlagClient", "flagmw.client.FlagClient"})
_FROM_JSON = frozenset(f"{q}.from_json" for q in _RUNCONFIG)
_ENV_METHODS = frozenset({"get", "setdefault", "pop"})
_RC_METHODS = frozenset({"get", "enabled", "get_as"})
_CLIENT_METHODS = frozenset({"value", "explain", "kill", "override"})
_ANY_METHODS = frozenset({"is_enabled", "enabled"})

_MAX_DEPTH = 32


@dataclass(frozen=True, slots=True)
class _Use:
    """A literal flag key used in code."""

    key: str
    line: int
    col: int
    form: str


@dataclass(frozen=True, slots=True)
class _EnvRead:
    name: str
    line: int
    col: int
    form: str


class Analyzer(ast.NodeVisitor):
    """Walks one module with its scopes; collects env toggle reads and flag key uses."""

    def __init__(self, tree: ast.Module) -> None:
        self.module = Scope(tree, None)
        collect(self.module)
        mark_globals(tree, self.module)
        self.scope = self.module
        self.env_reads: list[_EnvRead] = []
        self.uses: list[_Use] = []

    # -- scopes ---------------------------------------------------------------------------

    def _enter(self, node: ast.AST) -> None:
        scope = Scope(node, self.scope)
        collect(scope)
        self.scope = scope

    def _leave(self) -> None:
        assert self.scope.parent is not None
        self.scope = self.scope.parent

    def _lookup(self, name: str, scope: Scope | None = None) -> tuple[Scope, str] | None:
        """The scope that binds ``name`` as seen from ``scope`` (Python's LEGB rule,
        class bodies invisible to nested functions)."""
        s: Scope | None = scope or self.scope
        first = True
        while s is not None:
            if name in s.globals:
                return (self.module, name) if name in self.module.bindings else None
            if (first or not s.is_class) and name in s.bindings:
                return s, name
            first = False
            s = s.parent
        return None

    def _kind(self, name: str, scope: Scope | None = None, depth: int = 0) -> Kind:
        found = self._lookup(name, scope)
        if found is None:
            return OTHER
        s, name = found
        cached = s.kinds.get(name)
        if cached is not None:
            return cached
        if depth > _MAX_DEPTH:
            return OTHER
        s.kinds[name] = OTHER  # guards against `A = B; B = A`
        kinds = {self._classify(b, s, depth + 1) for b in s.bindings[name]}
        kind = kinds.pop() if len(kinds) == 1 else OTHER
        s.kinds[name] = kind
        return kind

    def _classify(self, b: Binding, scope: Scope, depth: int) -> Kind:
        if b.how == "import":
            return ("qual", b.qual)
        if b.how == "param":
            return self._annotated(b.annotation, scope, depth)
        if b.how != "expr":
            return OTHER
        if b.annotation is not None:
            hinted = self._annotated(b.annotation, scope, depth)
            if hinted != OTHER:
                return hinted
        if b.value is None:
            return OTHER
        text = self._const(b.value, scope, depth)
        if text is not None:
            return ("const", text)
        if self._is_rc_expr(b.value, scope, depth):
            return RC
        if isinstance(b.value, ast.Call) and self._qual(b.value.func, scope, depth) in _FLAGCLIENT:
            return CLIENT
        qual = self._qual(b.value, scope, depth)
        return ("qual", qual) if qual else OTHER

    def _annotated(self, ann: ast.expr | None, scope: Scope, depth: int) -> Kind:
        """RC / CLIENT for ``RunConfig``, ``FlagClient``, ``X | None``, ``Optional[X]``
        and their quoted forms."""
        if ann is None or depth > _MAX_DEPTH:
            return OTHER
        if isinstance(ann, ast.Constant) and isinstance(ann.value, str):
            try:
                parsed = ast.parse(ann.value, mode="eval").body
            except SyntaxError:
                return OTHER
            return self._annotated(parsed, scope, depth + 1)
        if isinstance(ann, ast.BinOp) and isinstance(ann.op, ast.BitOr):
            left = self._annotated(ann.left, scope, depth + 1)
            return left if left != OTHER else self._annotated(ann.right, scope, depth + 1)
        if isinstance(ann, ast.Subscript) and self._qual(ann.value, scope, depth) in {
            "typing.Optional",
            "typing.Union",
        }:
            inner = ann.slice.elts if isinstance(ann.slice, ast.Tuple) else [ann.slice]
            for part in inner:
                kind = self._annotated(part, scope, depth + 1)
                if kind != OTHER:
                    return kind
            return OTHER
        qual = self._qual(ann, scope, depth)
        if qual in _RUNCONFIG:
            return RC
        if qual in _FLAGCLIENT:
            return CLIENT
        return OTHER

    def _qual(self, expr: ast.expr, scope: Scope | None = None, depth: int = 0) -> str | None:
        """The dotted name an expression stands for (``o.environ`` → ``os.environ``)."""
        if depth > _MAX_DEPTH:
            return None
        if isinstance(expr, ast.Name):
            kind = self._kind(expr.id, scope, depth + 1)
            return kind[1] if kind[0] == "qual" else None
        if isinstance(expr, ast.Attribute):
            base = self._qual(expr.value, scope, depth + 1)
            return f"{base}.{expr.attr}" if base else None
        return None

    def _const(self, expr: ast.expr, scope: Scope | None = None, depth: int = 0) -> str | None:
        """The string an expression always evaluates to, when that is known statically."""
        if depth > _MAX_DEPTH:
            return None
        if isinstance(expr, ast.Constant):
            return expr.value if isinstance(expr.value, str) else None
        if isinstance(expr, ast.JoinedStr):
            parts = []
            for v in expr.values:
                if isinstance(v, ast.Constant) and isinstance(v.value, str):
                    parts.append(v.value)
                elif (
                    isinstance(v, ast.FormattedValue)
                    and v.conversion in (-1, ord("s"))
                    and v.format_spec is None
                ):
                    inner = self._const(v.value, scope, depth + 1)
                    if inner is None:
                        return None
                    parts.append(inner)
                else:
                    return None
            return "".join(parts)
        if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add):
            left = self._const(expr.left, scope, depth + 1)
            right = self._const(expr.right, scope, depth + 1) if left is not None else None
            return None if left is None or right is None else left + right
        if isinstance(expr, ast.Name):
            kind = self._kind(expr.id, scope, depth + 1)
            return kind[1] if kind[0] == "const" else None
        return None

    def _is_client(self, expr: ast.expr, scope: Scope | None = None, depth: int = 0) -> bool:
        if isinstance(expr, ast.Name):
            return is_client_name(expr.id) or self._kind(expr.id, scope, depth + 1) == CLIENT
        if isinstance(expr, ast.Attribute):
            return is_client_name(expr.attr)
        if isinstance(expr, ast.Call):
            return self._qual(expr.func, scope, depth + 1) in _FLAGCLIENT
        return False

    def _is_rc_expr(self, expr: ast.expr, scope: Scope | None = None, depth: int = 0) -> bool:
        """A RunConfig, conservatively: ``rc``, ``<x>.rc``, a name bound from one of the
        forms below, ``flagmw.current()``, ``client.resolve(...)`` /
        ``resolve_hot(...)``, ``RunConfig.from_json(...)``, ``rc.with_hot(...)``."""
        if depth > _MAX_DEPTH:
            return False
        if isinstance(expr, ast.Name):
            return expr.id == "rc" or self._kind(expr.id, scope, depth + 1) == RC
        if isinstance(expr, ast.Attribute):
            return expr.attr == "rc"
        if isinstance(expr, ast.Call):
            func = expr.func
            qual = self._qual(func, scope, depth + 1)
            if qual in _CURRENT or qual in _FROM_JSON:
                return True
            if isinstance(func, ast.Attribute):
                if func.attr in ("resolve", "resolve_hot"):
                    return self._is_client(func.value, scope, depth + 1)
                if func.attr == "with_hot":
                    return self._is_rc_expr(func.value, scope, depth + 1)
        return False

    # -- visiting -------------------------------------------------------------------------

    def _visit_all(self, nodes: Sequence[ast.AST | None]) -> None:
        for n in nodes:
            if n is not None:
                self.visit(n)

    def _visit_function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self._visit_all(node.decorator_list)
        a = node.args
        self._visit_all([*a.defaults, *a.kw_defaults])
        self._visit_all([x.annotation for x in (*a.posonlyargs, *a.args, *a.kwonlyargs)])
        self._visit_all([node.returns])
        self._enter(node)
        self._visit_all(node.body)
        self._leave()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._visit_function(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._visit_function(node)

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._visit_all([*node.args.defaults, *node.args.kw_defaults])
        self._enter(node)
        self.visit(node.body)
        self._leave()

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._visit_all([*node.decorator_list, *node.bases, *(k.value for k in node.keywords)])
        self._enter(node)
        self._visit_all(node.body)
        self._leave()

    # Findings point at the key expression: in a call split over lines that is the line
    # to fix (and to put a noqa comment on).
    def _env_read(self, key: ast.expr, form: str) -> None:
        name = self._const(key)
        if name is not None and is_toggle_name(name):
            self.env_reads.append(_EnvRead(name, key.lineno, key.col_offset, form))

    def _use(self, key: ast.expr | None, form: str) -> None:
        if key is None:
            return
        text = self._const(key)
        if text is not None:
            self.uses.append(_Use(text, key.lineno, key.col_offset, form))

    def visit_Subscript(self, node: ast.Subscript) -> None:
        if isinstance(node.ctx, ast.Load):
            if self._qual(node.value) in _ENVIRON:
                self._env_read(node.slice, "os.environ[...]")
            elif self._is_rc_expr(node.value):
                self._use(node.slice, "rc[...]")
        self.generic_visit(node)

    def visit_Compare(self, node: ast.Compare) -> None:
        left = node.left
        for op, right in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, ast.In | ast.NotIn) and self._qual(right) in _ENVIRON:
                self._env_read(left, "in os.environ")
            left = right
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        first = node.args[0] if node.args else _keyword(node, "key")
        qual = self._qual(func)
        if qual in _GETENV:
            if first is not None:
                self._env_read(first, "os.getenv()")
        elif qual in _GATED:
            self._use(first, "gated()")
        elif qual in _ROUTED:
            self._use(_keyword(node, "flag"), "routed_model(flag=...)")
            self._use(_keyword(node, "fallbacks"), "routed_model(fallbacks=...)")
        elif isinstance(func, ast.Attribute):
            attr = func.attr
            if attr in _ENV_METHODS and self._qual(func.value) in _ENVIRON:
                if first is not None:
                    self._env_read(first, f"os.environ.{attr}()")
            elif attr in _ANY_METHODS:
                self._use(first, f".{attr}()")
            elif attr in _RC_METHODS and self._is_rc_expr(func.value):
                self._use(first, f"rc.{attr}()")
            elif attr in _CLIENT_METHODS and self._is_client(func.value):
                self._use(first, f"client.{attr}()")
        elif isinstance(func, ast.Name) and func.id == "is_enabled":
            self._use(first, "is_enabled()")
        self.generic_visit(node)


def _keyword(node: ast.Call, name: str) -> ast.expr | None:
    for kw in node.keywords:
        if kw.arg == name:
            return kw.value
    return None
