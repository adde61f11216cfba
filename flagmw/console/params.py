"""Query parameters several routes share (the evaluation context)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query

from flagmw.console.views import context_from
from flagmw.core.context import EvaluationContext

__all__ = ["Context"]

_Text = Annotated[str | None, Query(max_length=256)]


def _context(
    tenant: _Text = None,
    user: _Text = None,
    route: _Text = None,
    plan: _Text = None,
    thread: _Text = None,
    environment: _Text = None,
    attributes: Annotated[
        str | None, Query(max_length=4096, description='A JSON object, e.g. {"region":"eu"}')
    ] = None,
) -> EvaluationContext:
    return context_from(
        tenant=tenant,
        user=user,
        route=route,
        plan=plan,
        thread=thread,
        environment=environment,
        attributes=attributes,
    )


#: The evaluation context of a request, from ``tenant``, ``user``, ``route``, ``plan``,
#: ``thread``, ``environment`` and ``attributes`` (JSON).
Context = Annotated[EvaluationContext, Depends(_context)]
