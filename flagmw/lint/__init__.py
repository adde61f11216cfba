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

The modules: :mod:`~flagmw.lint.findings` (codes and :class:`LintFinding`),
:mod:`~flagmw.lint.toggles` (toggle name patterns and registry suggestions),
:mod:`~flagmw.lint.scopes` and :mod:`~flagmw.lint.analyzer` (the AST visitor),
:mod:`~flagmw.lint.noqa`, :mod:`~flagmw.lint.check` (one module's source) and
:mod:`~flagmw.lint.paths` (files and directories).
"""

from flagmw.lint.analyzer import KEY_FORMS
from flagmw.lint.check import lint_source
from flagmw.lint.findings import CODES, LintFinding
from flagmw.lint.paths import SKIP_DIRS, lint_paths
from flagmw.lint.toggles import TOGGLE_PATTERNS, is_toggle_name, suggest_flag_for_env

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
