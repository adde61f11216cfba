"""Python's scopes for the analyzer: where each name of a module is bound, and what it
was bound to (classified lazily by :class:`flagmw.lint.analyzer.Analyzer`)."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

__all__ = [
    "CLIENT",
    "OTHER",
    "RC",
    "Binding",
    "Kind",
    "Scope",
    "collect",
    "is_client_name",
    "mark_globals",
]

_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)


# What a name is bound to, once classified.
Kind = tuple[str, str]  # ("qual", "os.environ"), ("const", "ENABLE_X"), ("rc", ""), …
OTHER: Kind = ("other", "")
RC: Kind = ("rc", "")
CLIENT: Kind = ("client", "")


@dataclass(slots=True)
class Binding:
    """One place a name is bound in a scope, classified on first lookup."""

    how: str  # "import" | "expr" | "param" | "other"
    qual: str = ""
    value: ast.expr | None = None
    annotation: ast.expr | None = None


@dataclass(slots=True, eq=False)
class Scope:
    node: ast.AST
    parent: Scope | None
    bindings: dict[str, list[Binding]] = field(default_factory=dict)
    globals: set[str] = field(default_factory=set)
    nonlocals: set[str] = field(default_factory=set)
    kinds: dict[str, Kind] = field(default_factory=dict)

    @property
    def is_class(self) -> bool:
        return isinstance(self.node, ast.ClassDef)

    def add(self, name: str, binding: Binding) -> None:
        self.bindings.setdefault(name, []).append(binding)


def collect(scope: Scope) -> None:
    """Record every binding made directly in ``scope`` (Python's rule: a name bound
    anywhere in a function is local to the whole function)."""
    node = scope.node
    if isinstance(node, ast.Lambda | ast.FunctionDef | ast.AsyncFunctionDef):
        a = node.args
        for arg in (*a.posonlyargs, *a.args, *a.kwonlyargs):
            scope.add(arg.arg, Binding("param", annotation=arg.annotation))
        for star in (a.vararg, a.kwarg):
            if star is not None:
                scope.add(star.arg, Binding("other"))
        roots: list[ast.AST] = []
        if isinstance(node, ast.Lambda):
            roots.append(node.body)
        else:
            roots.extend(node.body)
    elif isinstance(node, ast.ClassDef | ast.Module):
        roots = list(node.body)
    else:  # pragma: no cover - only the node types above make scopes
        return
    single: set[int] = set()
    stack = list(reversed(roots))
    while stack:
        n = stack.pop()
        if isinstance(n, _SCOPES):
            if not isinstance(n, ast.Lambda):
                scope.add(n.name, Binding("other"))
            stack.extend(reversed(_outer_parts(n)))
            continue
        if isinstance(n, ast.Global):
            scope.globals.update(n.names)
        elif isinstance(n, ast.Nonlocal):
            scope.nonlocals.update(n.names)
        elif isinstance(n, ast.Import):
            for alias in n.names:
                if alias.asname:
                    scope.add(alias.asname, Binding("import", qual=alias.name))
                else:  # `import os.path` binds `os`
                    top = alias.name.split(".")[0]
                    scope.add(top, Binding("import", qual=top))
        elif isinstance(n, ast.ImportFrom):
            for alias in n.names:
                if alias.name == "*":
                    continue
                bound = alias.asname or alias.name
                if n.level or not n.module:  # relative import: not os, not flagmw
                    scope.add(bound, Binding("other"))
                else:
                    scope.add(bound, Binding("import", qual=f"{n.module}.{alias.name}"))
        elif isinstance(n, ast.Assign) and len(n.targets) == 1 and _is_name(n.targets[0]):
            target = n.targets[0]
            assert isinstance(target, ast.Name)
            scope.add(target.id, Binding("expr", value=n.value))
            single.add(id(target))
        elif isinstance(n, ast.AnnAssign) and _is_name(n.target):
            assert isinstance(n.target, ast.Name)
            scope.add(n.target.id, Binding("expr", value=n.value, annotation=n.annotation))
            single.add(id(n.target))
        elif isinstance(n, ast.NamedExpr):
            scope.add(n.target.id, Binding("expr", value=n.value))
            single.add(id(n.target))
        elif isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load):
            # for/with/tuple targets, augmented assignments, del, and comprehension
            # variables (their own scope in Python; counting them here only makes a
            # name less trusted, never more)
            if id(n) not in single:
                scope.add(n.id, Binding("other"))
        elif isinstance(n, ast.ExceptHandler | ast.MatchAs | ast.MatchStar) and n.name:
            scope.add(n.name, Binding("other"))
        elif isinstance(n, ast.MatchMapping) and n.rest:
            scope.add(n.rest, Binding("other"))
        stack.extend(reversed(list(ast.iter_child_nodes(n))))
    for name in scope.globals | scope.nonlocals:
        scope.bindings.pop(name, None)


def _outer_parts(n: ast.AST) -> list[ast.AST]:
    """The parts of a def, class or lambda evaluated in the enclosing scope."""
    out: list[ast.AST] = []
    if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        out.extend(n.decorator_list)
    if isinstance(n, ast.ClassDef):
        out.extend(n.bases)
        out.extend(k.value for k in n.keywords)
    else:
        assert isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        out.extend(n.args.defaults)
        out.extend(d for d in n.args.kw_defaults if d is not None)
    return out


def mark_globals(tree: ast.Module, module: Scope) -> None:
    # A `global X` statement inside a function lets it rebind the module-level X: that
    # X is no longer a constant or an import we can trust.
    for n in ast.walk(tree):
        if isinstance(n, ast.Global):
            for name in n.names:
                module.add(name, Binding("other"))


def _is_name(node: ast.AST) -> bool:
    return isinstance(node, ast.Name)


def is_client_name(name: str) -> bool:
    low = name.lower().lstrip("_")
    return low == "client" or low.endswith("_client")
