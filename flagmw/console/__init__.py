"""The operator console (``flagmw serve``): an admin HTTP API and a server-rendered
dashboard on any store, with API tokens and roles (docs/console.md).

Needs the ``console`` extra (``pip install 'flagmw[console]'``): FastAPI, uvicorn,
Jinja2 and python-multipart. :func:`create_app` is imported lazily so ``import
flagmw.console`` costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from flagmw.console.app import create_app as create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from flagmw.console.app import create_app

        return create_app
    raise AttributeError(name)
