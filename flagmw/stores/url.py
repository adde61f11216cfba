"""A store's name → an open :class:`~flagmw.stores.base.Store`.

Everywhere a store is named (``--store``, ``FLAGMW_STORE``, :func:`open_store`) the same
spelling works:

* ``PATH`` or ``sqlite:PATH`` (``sqlite:///abs/path``): a SQLite file;
* ``postgresql://…`` / ``postgres://…``: a PostgreSQL store (extra ``flagmw[postgres]``);
* ``redis://…`` / ``rediss://…``: a Redis store (extra ``flagmw[redis]``).

Backends register in :data:`STORE_SCHEMES` as ``"module:function"``; the module is
imported only when its scheme is used, so naming a SQLite store never imports psycopg or
redis-py. Each opener has the signature ``open_url(spec: str, *, create: bool) -> Store``
and receives the whole spec (scheme included).
"""

from __future__ import annotations

import importlib
import re
from typing import TYPE_CHECKING, Protocol

from flagmw.errors import StoreUnavailableError

if TYPE_CHECKING:  # pragma: no cover
    from flagmw.stores.base import Store

__all__ = ["STORE_SCHEMES", "StoreOpener", "open_store", "store_scheme"]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):(.*)$", re.DOTALL)


class StoreOpener(Protocol):
    """``open_url(spec, *, create) -> Store`` of one backend."""

    def __call__(self, spec: str, *, create: bool) -> Store: ...


#: URL scheme → ``"module:function"`` of its opener (imported on first use).
STORE_SCHEMES: dict[str, str] = {
    "sqlite": "flagmw.stores.sqlite:open_url",
    "postgres": "flagmw.stores.postgres:open_url",
    "postgresql": "flagmw.stores.postgres:open_url",
    "redis": "flagmw.stores.redis:open_url",
    "rediss": "flagmw.stores.redis:open_url",
}


def store_scheme(spec: str) -> str:
    """The scheme of a store's name, lower case; ``"sqlite"`` for a plain path (a name
    without a scheme, or one whose "scheme" is a single letter such as ``C:``)."""
    m = _SCHEME.match(spec)
    return "sqlite" if m is None else m.group(1).lower()


def open_store(spec: str, *, create: bool = False) -> Store:
    """Open the store named ``spec``.

    Args:
        spec: a path, ``sqlite:PATH``, ``postgresql://…`` or ``redis://…``.
        create: create the store when it does not exist (only ``flagmw init`` and callers
            that ask explicitly); otherwise a missing store is an error, so a typo or an
            unreachable folder never silently yields a new, empty store.

    Raises:
        ValueError: an unknown scheme.
        StoreUnavailableError: the store does not exist (and ``create`` is False), cannot
            be reached, or its backend's extra is not installed.
    """
    scheme = store_scheme(spec)
    target = STORE_SCHEMES.get(scheme)
    if target is None:
        raise ValueError(
            f"unknown store scheme {scheme!r} in {spec!r} (known: "
            f"{', '.join(sorted(STORE_SCHEMES))}; a plain path is a SQLite file, "
            "write ./NAME for a file name with a colon)"
        )
    module_name, _, func_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        extra = "postgres" if scheme.startswith("postgres") else scheme.rstrip("s")
        raise StoreUnavailableError(
            spec, f"{scheme} stores need the extra: pip install 'flagmw[{extra}]' ({exc})"
        ) from None
    opener: StoreOpener = getattr(module, func_name)
    return opener(spec, create=create)
