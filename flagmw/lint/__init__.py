"""``flagmw lint``: the CI guard against direct environment-variable toggles and unknown
flag keys."""

from flagmw.lint.linter import (
    CODES,
    KEY_FORMS,
    SKIP_DIRS,
    TOGGLE_PATTERNS,
    LintFinding,
    is_toggle_name,
    lint_paths,
    lint_source,
    suggest_flag_for_env,
)

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
