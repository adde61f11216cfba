"""``--store``: from a store's name on the command line to an open
:class:`~flagmw.stores.Store`. New stores plug in through :data:`STORE_OPENERS`."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from flagmw.cli.errors import CliError

if TYPE_CHECKING:  # pragma: no cover
    from flagmw.stores.base import Store

__all__ = ["STORE_OPENERS", "open_store"]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):(.*)$", re.DOTALL)


def _open_sqlite(location: str, create: bool) -> Store:
    if location.startswith("//"):  # sqlite:///abs/path, as in a URL
        location = location[2:]
    if not location:
        raise CliError("--store sqlite: needs a file path, e.g. sqlite:/srv/flagmw.db")
    path = Path(location).expanduser()
    if not create and not path.exists():  # (SQLiteStore(create=False) would also refuse)
        raise CliError(
            f"no flagmw store at {path}: publish a snapshot first (flagmw publish "
            "flags.yaml), or name the store with --store or FLAGMW_STORE"
        )
    if path.is_dir():
        raise CliError(
            f"--store {location} is a folder; name the store file, e.g. {path}/flagmw.db"
        )
    from flagmw.stores.sqlite import SQLiteStore

    return SQLiteStore(path)


#: Store URL scheme → opener(location after the scheme, create). New stores (PostgreSQL,
#: Redis) plug in here; a plain path (no scheme) is a SQLite file.
STORE_OPENERS: dict[str, Callable[[str, bool], Store]] = {"sqlite": _open_sqlite}

_PLANNED_SCHEMES = ("postgres", "postgresql", "redis", "rediss")


def open_store(spec: str, *, create: bool) -> Store:
    """Open the store named by ``--store``: ``PATH`` or ``sqlite:PATH`` (or
    ``sqlite:///ABS/PATH``) for a SQLite file.

    Args:
        spec: the store's name.
        create: create a missing SQLite file (commands that write); otherwise a missing
            file is an error, so a typo in ``--store`` does not silently read an empty
            store.

    Raises:
        CliError: an unknown or unsupported scheme, or a missing file.
        StoreUnavailableError: the file is not a flagmw store or cannot be opened.
    """
    m = _SCHEME.match(spec)
    if m is None:
        return _open_sqlite(spec, create)
    scheme, rest = m.group(1).lower(), m.group(2)
    opener = STORE_OPENERS.get(scheme)
    if opener is not None:
        return opener(rest, create)
    if scheme in _PLANNED_SCHEMES:
        raise CliError(
            f"--store {spec}: {scheme} stores are not available in this flagmw yet; "
            "use a SQLite file (--store PATH or sqlite:PATH)"
        )
    raise CliError(
        f"--store {spec}: unknown store scheme {scheme!r} (known: "
        f"{', '.join(sorted(STORE_OPENERS))}; a plain path is a SQLite file, "
        "write ./NAME for a file name with a colon)"
    )
