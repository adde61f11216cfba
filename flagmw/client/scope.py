"""Whether an override's tenant or route is one the served snapshot knows (issue 9
item 10): a typo in ``--tenant`` scopes a kill to nobody, silently."""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from flagmw.core.compiled import CompiledSnapshot

__all__ = ["unknown_target"]


def unknown_target(compiled: CompiledSnapshot, tenant: str | None, route: str | None) -> str | None:
    """Why an override scoped to ``tenant`` / ``route`` reaches no run the snapshot
    describes (the target has no overlay in it), with the closest known name; None when
    the target is known, global, or no snapshot is published yet.

    The API logs it as a warning (a tenant may be real and simply have no overlay); the
    command line refuses it without ``--force``.
    """
    if compiled.rev is None:
        return None
    doc = compiled.document
    for what, target in (("tenant", tenant), ("route", route)):
        known = doc[f"{what}s"]
        if target is None or target in known or not _plain(target):
            continue  # empty or unstorable text: refused by the argument checks
        close = difflib.get_close_matches(target, list(known), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return (
            f"{what} {target!r} is not in snapshot rev {compiled.rev}{hint}: an override "
            f"scoped to it reaches only runs of a {what} without an overlay"
        )
    return None


def _plain(target: str) -> bool:
    """Non-empty text that every store can hold (the argument checks report the rest)."""
    if not isinstance(target, str) or not target.strip() or "\x00" in target:
        return False
    try:
        target.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
