"""``flagmw lint``: the CI guard that keeps feature toggles in the registry.

It reads Python source with :mod:`ast` (nothing is imported or executed) and reports:

``FM000`` (error)
    a file that cannot be read or parsed, or a path that does not exist; the rest of
    the tree is still checked.
``FM001`` (error)
    a feature toggle read from a process environment variable: ``os.environ["X"]``,
    ``os.environ.get("X")``, ``os.environ.setdefault("X", …)``, ``os.environ.pop("X")``,
    ``os.getenv("X")``, ``"X" in os.environ``, through any alias (``import os as o``,
    ``from os import environ, getenv``, ``env = os.environ``), where ``X`` is a string
    known without running the code (a literal, an f-string or ``+`` of literals, or a
    name bound once to such a string) and looks like a toggle (:data:`TOGGLE_PATTERNS`).
    ``DATABASE_URL`` or ``HOME`` are not toggles and are not reported.
``FM002`` (error, only with a registry)
    a flag key used in code that the registry does not define (see :data:`KEY_FORMS`).
``FM003`` (warning, only with a registry)
    a flag past its ``expires`` date: one finding per place that still reads it, and,
    from :func:`lint_paths`, one at the registry file for an expired flag that no linted
    file reads any more (it can be deleted).

Why: the Harbor incident (``docs/lint.md``) — twelve services reading their own
``REFUND_TOOL_ENABLED`` / ``ENABLE_REFUND_TOOL`` variables, a kill that needed a
redeploy of four repos. The remedy's checklist bans direct env-var toggles in CI.

A line ending in ``# flagmw: noqa`` silences every finding on it; ``# flagmw: noqa FM001``
(or ``noqa: FM001, FM003``) silences only those codes. Lines and columns are 1-based
(columns count characters, as editors do); ``0`` means "the whole file".
"""

from __future__ import annotations

import ast
import datetime as _dt
import difflib
import io
import os
import re
import tokenize
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from flagmw.core.flag_spec import FlagType
from flagmw.core.registry import FlagRegistry, env_var_name
from flagmw.core.source import load_document
from flagmw.errors import FlagmwError

__all__ = [
    "CODES",
    "KEY_FORMS",
    "SKIP_DIRS",
    "TOGGLE_PATTERNS",
    "LintFinding",
    "is_toggle_name",
    "lint_paths",
    "lint_source",
    "suggest_flag_for_env",
]

#: Finding codes and what they mean (stable names, shown by ``flagmw lint --help``).
CODES: Mapping[str, str] = {
    "FM000": "file cannot be read or parsed",
    "FM001": "feature toggle read from a process environment variable",
    "FM002": "flag key used in code is not defined in the registry",
    "FM003": "flag is past its expires date",
}

#: Environment variable names that look like feature toggles, as case-insensitive
#: globs (``*`` matches any text, including none).
TOGGLE_PATTERNS: tuple[str, ...] = (
    "ENABLE_*",
    "*_ENABLED",
    "*_ENABLE",
    "DISABLE_*",
    "*_DISABLED",
    "FF_*",
    "USE_*",
    "FEATURE_*",
    "*_FLAG",
    "FLAG_*",
)

#: The code forms whose string-literal key argument is checked against the registry.
KEY_FORMS: tuple[str, ...] = (
    "gated(KEY) / @gated(KEY) / flagmw.gated(KEY)",
    "routed_model(..., flag=KEY, fallbacks=KEY)",
    "rc[KEY], rc.get(KEY), rc.enabled(KEY), rc.get_as(KEY, ...) on a RunConfig",
    "<any>.is_enabled(KEY), <any>.enabled(KEY), is_enabled(KEY)",
    "client.value(KEY), client.explain(KEY), client.kill(KEY), client.override(KEY, ...)",
)

#: Directory names never entered when a directory is linted (hidden directories,
#: those starting with ``.``, are skipped too).
SKIP_DIRS: frozenset[str] = frozenset(
    {".venv", "venv", "site-packages", "__pycache__", ".git", "node_modules"}
)


def _glob_to_regex(patterns: Sequence[str]) -> re.Pattern[str]:
    parts = [".*".join(re.escape(p) for p in pat.split("*")) for pat in patterns]
    # ASCII folding only: with Unicode folding "ſ" (long s) would match "S".
    return re.compile("|".join(parts), re.IGNORECASE | re.ASCII | re.DOTALL)


_TOGGLE_RE = _glob_to_regex(TOGGLE_PATTERNS)


def is_toggle_name(name: str) -> bool:
    """True when an environment variable name looks like a feature toggle, i.e. matches
    one of :data:`TOGGLE_PATTERNS` ignoring ASCII case (``REFUND_TOOL_ENABLED``,
    ``enable_reflection``, ``FF_MODEL_PRIMARY``); ``DATABASE_URL`` does not."""
    return _TOGGLE_RE.fullmatch(name) is not None


@dataclass(frozen=True, slots=True)
class LintFinding:
    """One problem found by :func:`lint_paths` / :func:`lint_source`.

    Attributes:
        path: the file, as reached from the linted path (or the registry's source for
            the "expired and unread" ``FM003``).
        line: 1-based line; 0 when the finding is about the whole file.
        col: 1-based column in characters; 0 when unknown.
        code: ``FM000`` … ``FM003`` (see :data:`CODES`).
        message: what is wrong, naming the variable or flag key.
        suggestion: what to do instead (may be empty).
        severity: ``"error"`` (the CLI exits 1) or ``"warning"``.
    """

    path: str
    line: int
    col: int
    code: str
    message: str
    suggestion: str
    severity: str

    def to_dict(self) -> dict[str, Any]:
        """The finding as JSON primitives (for ``flagmw lint --json``)."""
        return asdict(self)

    def __str__(self) -> str:
        """``"path:line:col CODE message (suggestion)"``."""
        text = f"{self.path}:{self.line}:{self.col} {self.code} {self.message}"
        if self.suggestion:
            text += f" ({self.suggestion})"
        return text


# -- registry suggestions for environment variables -----------------------------------

# Words that only say "this is a toggle": never enough on their own to tie a variable
# to a flag.
_MARKERS = frozenset({"ff", "feature", "features", "flag", "flags", "use", "is"})
_SYNONYMS = {"enable": "enabled", "disable": "enabled", "disabled": "enabled"}


def _tokens(text: str) -> list[str]:
    out = []
    for raw in re.split(r"[^a-z0-9]+", text.lower()):
        if not raw or raw in _MARKERS:
            continue
        tok = _SYNONYMS.get(raw, raw)
        if len(tok) > 3 and tok.endswith("s") and not tok.endswith("ss"):
            tok = tok[:-1]  # tools → tool, refunds → refund
        out.append(tok)
    return out


def _token_matches(a: str, b: str) -> bool:
    if a == b:
        return True
    return min(len(a), len(b)) >= 4 and difflib.SequenceMatcher(None, a, b).ratio() >= 0.8


def suggest_flag_for_env(name: str, registry: FlagRegistry | None) -> str | None:
    """The registry key an environment variable toggle probably stands for, or None.

    ``FF_<KEY>`` names (:func:`flagmw.registry.env_var_name`) map to their key exactly.
    Otherwise both names are split into normalised words (lower case, plural ``s``
    dropped, ``enable``/``disable``/``disabled`` → ``enabled``, the toggle markers
    ``FF``/``USE``/``FEATURE``/``FLAG``/``IS`` dropped; two words of 4+ letters match when
    their :class:`difflib.SequenceMatcher` ratio is at least 0.8). A key is a candidate
    when it matches more than half of the variable's words other than ``enabled``; the
    best candidate has the most such words matched, then the highest Jaccard overlap of
    all words, then the closest ratio, then the smallest key. ``REFUND_TOOL_ENABLED``
    and ``ENABLE_REFUND_TOOL`` → ``tools.refund_api.enabled``; ``USE_REFLECTION`` →
    ``loop.reflection.enabled``; a registry with only ``tools.kb_search.enabled`` gives
    None for them (one word of two, ``tool``, is not enough).
    """
    if registry is None or len(registry) == 0:
        return None
    upper = name.upper()
    keys = [flag.key for flag in registry]
    for key in keys:
        if env_var_name(key) == upper:
            return key
    mine = set(_tokens(name))
    words = mine - {"enabled"}
    if not words:
        return None
    joined = "_".join(sorted(mine))
    best: tuple[float, float, float, str] | None = None
    for key in keys:
        theirs = set(_tokens(key))
        matched = {a for a in mine if any(_token_matches(a, b) for b in theirs)}
        coverage = len(matched & words) / len(words)
        if coverage <= 0.5:
            continue
        jaccard = len(matched) / (len(mine) + len(theirs) - len(matched))
        ratio = difflib.SequenceMatcher(None, joined, "_".join(sorted(theirs))).ratio()
        cand = (-coverage, -jaccard, -ratio, key)
        if best is None or cand < best:
            best = cand
    return None if best is None else best[3]


def _env_suggestion(name: str, registry: FlagRegistry | None) -> str:
    key = suggest_flag_for_env(name, registry)
    if key is None or registry is None:
        return "define a flag in the registry and read it with rc[...]/client.is_enabled(...)"
    flag = registry[key]
    outside = "client.is_enabled" if flag.type is FlagType.BOOL else "client.value"
    return f"use the registry flag {key!r}: rc[{key!r}] in a run, {outside}({key!r}) outside one"


# -- names and scopes -------------------------------------------------------------------

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
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
_MAX_DEPTH = 32

# What a name is bound to, once classified.
_Kind = tuple[str, str]  # ("qual", "os.environ"), ("const", "ENABLE_X"), ("rc", ""), …
_OTHER: _Kind = ("other", "")
_RC: _Kind = ("rc", "")
_CLIENT: _Kind = ("client", "")


@dataclass(slots=True)
class _Binding:
    """One place a name is bound in a scope, classified on first lookup."""

    how: str  # "import" | "expr" | "param" | "other"
    qual: str = ""
    value: ast.expr | None = None
    annotation: ast.expr | None = None


@dataclass(slots=True, eq=False)
class _Scope:
    node: ast.AST
    parent: _Scope | None
    bindings: dict[str, list[_Binding]] = field(default_factory=dict)
    globals: set[str] = field(default_factory=set)
    nonlocals: set[str] = field(default_factory=set)
    kinds: dict[str, _Kind] = field(default_factory=dict)

    @property
    def is_class(self) -> bool:
        return isinstance(self.node, ast.ClassDef)

    def add(self, name: str, binding: _Binding) -> None:
        self.bindings.setdefault(name, []).append(binding)


def _collect(scope: _Scope) -> None:
    """Record every binding made directly in ``scope`` (Python's rule: a name bound
    anywhere in a function is local to the whole function)."""
    node = scope.node
    if isinstance(node, ast.Lambda | ast.FunctionDef | ast.AsyncFunctionDef):
        a = node.args
        for arg in (*a.posonlyargs, *a.args, *a.kwonlyargs):
            scope.add(arg.arg, _Binding("param", annotation=arg.annotation))
        for star in (a.vararg, a.kwarg):
            if star is not None:
                scope.add(star.arg, _Binding("other"))
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
                scope.add(n.name, _Binding("other"))
            stack.extend(reversed(_outer_parts(n)))
            continue
        if isinstance(n, ast.Global):
            scope.globals.update(n.names)
        elif isinstance(n, ast.Nonlocal):
            scope.nonlocals.update(n.names)
        elif isinstance(n, ast.Import):
            for alias in n.names:
                if alias.asname:
                    scope.add(alias.asname, _Binding("import", qual=alias.name))
                else:  # `import os.path` binds `os`
                    top = alias.name.split(".")[0]
                    scope.add(top, _Binding("import", qual=top))
        elif isinstance(n, ast.ImportFrom):
            for alias in n.names:
                if alias.name == "*":
                    continue
                bound = alias.asname or alias.name
                if n.level or not n.module:  # relative import: not os, not flagmw
                    scope.add(bound, _Binding("other"))
                else:
                    scope.add(bound, _Binding("import", qual=f"{n.module}.{alias.name}"))
        elif isinstance(n, ast.Assign) and len(n.targets) == 1 and _is_name(n.targets[0]):
            target = n.targets[0]
            assert isinstance(target, ast.Name)
            scope.add(target.id, _Binding("expr", value=n.value))
            single.add(id(target))
        elif isinstance(n, ast.AnnAssign) and _is_name(n.target):
            assert isinstance(n.target, ast.Name)
            scope.add(n.target.id, _Binding("expr", value=n.value, annotation=n.annotation))
            single.add(id(n.target))
        elif isinstance(n, ast.NamedExpr):
            scope.add(n.target.id, _Binding("expr", value=n.value))
            single.add(id(n.target))
        elif isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load):
            # for/with/tuple targets, augmented assignments, del, and comprehension
            # variables (their own scope in Python; counting them here only makes a
            # name less trusted, never more)
            if id(n) not in single:
                scope.add(n.id, _Binding("other"))
        elif isinstance(n, ast.ExceptHandler | ast.MatchAs | ast.MatchStar) and n.name:
            scope.add(n.name, _Binding("other"))
        elif isinstance(n, ast.MatchMapping) and n.rest:
            scope.add(n.rest, _Binding("other"))
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


def _mark_globals(tree: ast.Module, module: _Scope) -> None:
    # A `global X` statement inside a function lets it rebind the module-level X: that
    # X is no longer a constant or an import we can trust.
    for n in ast.walk(tree):
        if isinstance(n, ast.Global):
            for name in n.names:
                module.add(name, _Binding("other"))


def _is_name(node: ast.AST) -> bool:
    return isinstance(node, ast.Name)


def _is_client_name(name: str) -> bool:
    low = name.lower().lstrip("_")
    return low == "client" or low.endswith("_client")


# -- the analysis -----------------------------------------------------------------------


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


class _Analyzer(ast.NodeVisitor):
    """Walks one module with its scopes; collects env toggle reads and flag key uses."""

    def __init__(self, tree: ast.Module) -> None:
        self.module = _Scope(tree, None)
        _collect(self.module)
        _mark_globals(tree, self.module)
        self.scope = self.module
        self.env_reads: list[_EnvRead] = []
        self.uses: list[_Use] = []

    # -- scopes ---------------------------------------------------------------------------

    def _enter(self, node: ast.AST) -> None:
        scope = _Scope(node, self.scope)
        _collect(scope)
        self.scope = scope

    def _leave(self) -> None:
        assert self.scope.parent is not None
        self.scope = self.scope.parent

    def _lookup(self, name: str, scope: _Scope | None = None) -> tuple[_Scope, str] | None:
        """The scope that binds ``name`` as seen from ``scope`` (Python's LEGB rule,
        class bodies invisible to nested functions)."""
        s: _Scope | None = scope or self.scope
        first = True
        while s is not None:
            if name in s.globals:
                return (self.module, name) if name in self.module.bindings else None
            if (first or not s.is_class) and name in s.bindings:
                return s, name
            first = False
            s = s.parent
        return None

    def _kind(self, name: str, scope: _Scope | None = None, depth: int = 0) -> _Kind:
        found = self._lookup(name, scope)
        if found is None:
            return _OTHER
        s, name = found
        cached = s.kinds.get(name)
        if cached is not None:
            return cached
        if depth > _MAX_DEPTH:
            return _OTHER
        s.kinds[name] = _OTHER  # guards against `A = B; B = A`
        kinds = {self._classify(b, s, depth + 1) for b in s.bindings[name]}
        kind = kinds.pop() if len(kinds) == 1 else _OTHER
        s.kinds[name] = kind
        return kind

    def _classify(self, b: _Binding, scope: _Scope, depth: int) -> _Kind:
        if b.how == "import":
            return ("qual", b.qual)
        if b.how == "param":
            return self._annotated(b.annotation, scope, depth)
        if b.how != "expr":
            return _OTHER
        if b.annotation is not None:
            hinted = self._annotated(b.annotation, scope, depth)
            if hinted != _OTHER:
                return hinted
        if b.value is None:
            return _OTHER
        text = self._const(b.value, scope, depth)
        if text is not None:
            return ("const", text)
        if self._is_rc_expr(b.value, scope, depth):
            return _RC
        if isinstance(b.value, ast.Call) and self._qual(b.value.func, scope, depth) in _FLAGCLIENT:
            return _CLIENT
        qual = self._qual(b.value, scope, depth)
        return ("qual", qual) if qual else _OTHER

    def _annotated(self, ann: ast.expr | None, scope: _Scope, depth: int) -> _Kind:
        """RC / CLIENT for ``RunConfig``, ``FlagClient``, ``X | None``, ``Optional[X]``
        and their quoted forms."""
        if ann is None or depth > _MAX_DEPTH:
            return _OTHER
        if isinstance(ann, ast.Constant) and isinstance(ann.value, str):
            try:
                parsed = ast.parse(ann.value, mode="eval").body
            except SyntaxError:
                return _OTHER
            return self._annotated(parsed, scope, depth + 1)
        if isinstance(ann, ast.BinOp) and isinstance(ann.op, ast.BitOr):
            left = self._annotated(ann.left, scope, depth + 1)
            return left if left != _OTHER else self._annotated(ann.right, scope, depth + 1)
        if isinstance(ann, ast.Subscript) and self._qual(ann.value, scope, depth) in {
            "typing.Optional",
            "typing.Union",
        }:
            inner = ann.slice.elts if isinstance(ann.slice, ast.Tuple) else [ann.slice]
            for part in inner:
                kind = self._annotated(part, scope, depth + 1)
                if kind != _OTHER:
                    return kind
            return _OTHER
        qual = self._qual(ann, scope, depth)
        if qual in _RUNCONFIG:
            return _RC
        if qual in _FLAGCLIENT:
            return _CLIENT
        return _OTHER

    def _qual(self, expr: ast.expr, scope: _Scope | None = None, depth: int = 0) -> str | None:
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

    def _const(self, expr: ast.expr, scope: _Scope | None = None, depth: int = 0) -> str | None:
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

    def _is_client(self, expr: ast.expr, scope: _Scope | None = None, depth: int = 0) -> bool:
        if isinstance(expr, ast.Name):
            return _is_client_name(expr.id) or self._kind(expr.id, scope, depth + 1) == _CLIENT
        if isinstance(expr, ast.Attribute):
            return _is_client_name(expr.attr)
        if isinstance(expr, ast.Call):
            return self._qual(expr.func, scope, depth + 1) in _FLAGCLIENT
        return False

    def _is_rc_expr(self, expr: ast.expr, scope: _Scope | None = None, depth: int = 0) -> bool:
        """A RunConfig, conservatively: ``rc``, ``<x>.rc``, a name bound from one of the
        forms below, ``flagmw.current()``, ``client.resolve(...)`` /
        ``resolve_hot(...)``, ``RunConfig.from_json(...)``, ``rc.with_hot(...)``."""
        if depth > _MAX_DEPTH:
            return False
        if isinstance(expr, ast.Name):
            return expr.id == "rc" or self._kind(expr.id, scope, depth + 1) == _RC
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


# -- noqa -------------------------------------------------------------------------------

_NOQA_RE = re.compile(
    r"#\s*flagmw:\s*noqa\b(?P<tail>[^#]*)",
    re.IGNORECASE,
)
_CODE_RE = re.compile(r"\bFM\d{3}\b", re.IGNORECASE)
_ALL = frozenset({"*"})


def _noqa_lines(source: str) -> dict[int, frozenset[str]]:
    """``{line: codes}`` from ``# flagmw: noqa [CODES]`` comments (``{"*"}``: every
    code). Only real comments count, not the same text inside a string."""
    out: dict[int, frozenset[str]] = {}
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError):  # pragma: no cover - the file parsed
        return out
    for tok in tokens:
        if tok.type != tokenize.COMMENT:
            continue
        m = _NOQA_RE.search(tok.string)
        if m is None:
            continue
        tail = m.group("tail").lstrip(" \t:")
        codes = frozenset(c.upper() for c in _CODE_RE.findall(tail)) if tail else _ALL
        out[tok.start[0]] = codes or _ALL
    return out


# -- the public functions ---------------------------------------------------------------


def _char_col(lines: Sequence[str], line: int, byte_col: int) -> int:
    """1-based character column of an AST ``col_offset`` (which counts UTF-8 bytes)."""
    if 1 <= line <= len(lines):
        return len(lines[line - 1].encode("utf-8")[:byte_col].decode("utf-8", "replace")) + 1
    return byte_col + 1


def _finding(
    path: str, line: int, col: int, code: str, message: str, suggestion: str
) -> LintFinding:
    severity = "warning" if code == "FM003" else "error"
    return LintFinding(path, line, col, code, message, suggestion, severity)


def _sort_key(f: LintFinding) -> tuple[str, int, int, str, str]:
    return (f.path, f.line, f.col, f.code, f.message)


def _check_source(
    source: str,
    path: str,
    registry: FlagRegistry | None,
    today: _dt.date,
    read_keys: set[str] | None = None,
) -> list[LintFinding]:
    try:
        with warnings.catch_warnings():
            # invalid escape sequences and the like are not lint's business
            warnings.simplefilter("ignore")
            tree = ast.parse(source, filename=path)
    except SyntaxError as exc:
        line = exc.lineno or 0
        return [
            _finding(
                path,
                line,
                (exc.offset or 0) if line else 0,
                "FM000",
                f"cannot parse: {exc.msg}",
                "fix the syntax error; nothing else in this file was checked",
            )
        ]
    except (ValueError, RecursionError, MemoryError) as exc:  # e.g. NUL bytes, deep nesting
        return [_finding(path, 0, 0, "FM000", f"cannot parse: {exc}", "")]
    analyzer = _Analyzer(tree)
    analyzer.visit(tree)
    lines = re.split(r"\r\n|\r|\n", source)
    out: list[LintFinding] = []
    for r in analyzer.env_reads:
        out.append(
            _finding(
                path,
                r.line,
                _char_col(lines, r.line, r.col),
                "FM001",
                f"feature toggle {r.name!r} read from the process environment ({r.form})",
                _env_suggestion(r.name, registry),
            )
        )
    if registry is not None:
        expired = {f.key: f.expires for f in registry.expired(today)}
        for u in analyzer.uses:
            col = _char_col(lines, u.line, u.col)
            if read_keys is not None:
                read_keys.add(u.key)
            if u.key not in registry:
                close = registry.suggest(u.key)
                hint = (
                    "did you mean " + " or ".join(repr(k) for k in close) + "?"
                    if close
                    else f"define {u.key!r} in the registry ({registry.source}) or fix the key"
                )
                out.append(
                    _finding(
                        path,
                        u.line,
                        col,
                        "FM002",
                        f"unknown flag key {u.key!r} in {u.form}: "
                        f"the registry ({registry.source}) does not define it",
                        hint,
                    )
                )
            elif u.key in expired:
                out.append(
                    _finding(
                        path,
                        u.line,
                        col,
                        "FM003",
                        f"flag {u.key!r} expired on {expired[u.key]} but {u.form} still reads it",
                        f"remove this read and then the flag from {registry.source}, "
                        "or move its expires date",
                    )
                )
    noqa = _noqa_lines(source) if out else {}
    kept = [
        f for f in out if not (codes := noqa.get(f.line)) or (codes != _ALL and f.code not in codes)
    ]
    return sorted(set(kept), key=_sort_key)


def lint_source(
    source: str,
    path: str = "<string>",
    registry: FlagRegistry | None = None,
    *,
    today: _dt.date | None = None,
) -> list[LintFinding]:
    """Lint one Python module given as text.

    Args:
        source: the module's source code.
        path: the name used in findings.
        registry: enables ``FM002`` (unknown keys) and ``FM003`` (reads of expired flags).
        today: the date ``expires`` is compared with (default: today, local time).

    Returns:
        The findings, sorted by path, line and column. A module that does not parse gives
        one ``FM000`` finding. The "expired flag read nowhere" ``FM003`` needs the whole
        code base and only comes from :func:`lint_paths`.
    """
    return _check_source(source, path, registry, today or _dt.date.today())


def _walk(root: Path) -> Iterator[Path]:
    """``*.py`` files under ``root``, sorted, skipping :data:`SKIP_DIRS` and hidden
    directories (``os.walk`` does not follow directory symlinks, so no cycles)."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
        for name in sorted(filenames):
            if name.endswith(".py"):
                yield Path(dirpath) / name


def _read(path: Path) -> str:
    with path.open("rb") as fh:
        data = fh.read()
    # honour a PEP 263 coding cookie, as the interpreter does
    encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    return data.decode(encoding)


def _registry_line(registry: FlagRegistry, key: str) -> int:
    """The line of ``key`` in the registry's YAML file (0 when not a readable file)."""
    if not os.path.isfile(registry.source):
        return 0
    try:
        data, locator = load_document(registry.source)
    except FlagmwError:
        return 0
    base: tuple[str, ...] = ("flags",) if isinstance(data, Mapping) and "flags" in data else ()
    where = locator((*base, key))
    _, _, line = where.rpartition(":")
    return int(line) if line.isdigit() else 0


def lint_paths(
    paths: Sequence[str | os.PathLike[str]],
    registry: FlagRegistry | None = None,
    *,
    today: _dt.date | None = None,
) -> list[LintFinding]:
    """Lint files and directories (directories: every ``*.py`` below, skipping
    :data:`SKIP_DIRS` and hidden directories; files named explicitly are linted
    whatever their suffix).

    Args:
        paths: files and directories. Finding paths are as reached from these
            (``src`` → ``src/app/tools.py``); a file reached twice is linted once.
        registry: enables ``FM002`` and ``FM003``; with it, each expired flag that no
            linted file reads gives one ``FM003`` at ``registry.source`` (at the flag's
            line when the source is a YAML/JSON file).
        today: the date ``expires`` is compared with (default: today, local time).

    Returns:
        The findings, sorted by path, line and column. Never raises for bad input: a
        path that does not exist or a file that cannot be read or parsed gives one
        ``FM000`` (as ruff reports ``E902``), and the other files are still checked.
    """
    if isinstance(paths, str | os.PathLike):  # a lone path, not a sequence of them
        paths = [paths]
    day = today or _dt.date.today()
    findings: list[LintFinding] = []
    read_keys: set[str] = set()
    seen: set[Path] = set()
    for raw in paths:
        root = Path(raw)
        if root.is_dir():
            files: Iterator[Path] = _walk(root)
        elif root.exists():
            files = iter([root])
        else:
            findings.append(
                _finding(str(root), 0, 0, "FM000", "no such file or directory", "check the path")
            )
            continue
        for file in files:
            real = file.resolve()
            if real in seen:
                continue
            seen.add(real)
            try:
                source = _read(file)
            except (OSError, UnicodeDecodeError, SyntaxError) as exc:
                # SyntaxError: detect_encoding on a bad coding cookie
                findings.append(_finding(str(file), 0, 0, "FM000", f"cannot read: {exc}", ""))
                continue
            findings.extend(_check_source(source, str(file), registry, day, read_keys))
    if registry is not None:
        for flag in registry.expired(day):
            if flag.key in read_keys:
                continue
            findings.append(
                _finding(
                    registry.source,
                    _registry_line(registry, flag.key),
                    0,
                    "FM003",
                    f"flag {flag.key!r} expired on {flag.expires} and no linted file reads it",
                    "delete it from the registry",
                )
            )
    return sorted(findings, key=_sort_key)
