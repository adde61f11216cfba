"""Environment variable names that look like feature toggles (:data:`TOGGLE_PATTERNS`),
and the registry flag such a variable probably stands for."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence

from flagmw.core.flag_spec import FlagType
from flagmw.core.registry import FlagRegistry, env_var_name

__all__ = ["TOGGLE_PATTERNS", "env_suggestion", "is_toggle_name", "suggest_flag_for_env"]

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


def env_suggestion(name: str, registry: FlagRegistry | None) -> str:
    key = suggest_flag_for_env(name, registry)
    if key is None or registry is None:
        return "define a flag in the registry and read it with rc[...]/client.is_enabled(...)"
    flag = registry[key]
    outside = "client.is_enabled" if flag.type is FlagType.BOOL else "client.value"
    return f"use the registry flag {key!r}: rc[{key!r}] in a run, {outside}({key!r}) outside one"
