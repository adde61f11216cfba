"""``--store``: from a store's name on the command line to an open
:class:`~flagmw.stores.Store`. New stores plug in through
:data:`flagmw.stores.url.STORE_SCHEMES`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from flagmw.cli.errors import CliError

if TYPE_CHECKING:  # pragma: no cover
    from flagmw.stores.base import Store

__all__ = ["open_store"]


def open_store(spec: str, *, create: bool) -> Store:
    """Open the store named by ``--store`` (see :func:`flagmw.stores.url.open_store` for
    the spellings: a path, ``sqlite:PATH``, ``postgresql://…``, ``redis://…``).

    Args:
        spec: the store's name.
        create: create a missing store — ``flagmw init`` only; for every other command a
            missing store is an error, so a typo in ``--store`` or a moved folder never
            turns into a new, empty store (where a kill would be written and lost).

    Raises:
        CliError: an unknown scheme, a bad path, or a missing SQLite file.
        StoreUnavailableError: the store is not a flagmw store or cannot be reached.
    """
    from flagmw.stores.url import open_store as _open
    from flagmw.stores.url import store_scheme

    if store_scheme(spec) == "sqlite":
        location = spec[7:] if spec[:7].lower() == "sqlite:" else spec
        if location.startswith("//"):
            location = location[2:]
        if not location:
            raise CliError("--store sqlite: needs a file path, e.g. sqlite:/srv/flagmw.db")
        path = Path(location).expanduser()
        try:
            missing = not create and not path.exists()
        except OSError as exc:  # e.g. a name too long for the file system
            raise CliError(f"--store {spec}: {exc.strerror or exc}") from None
        if missing:
            raise CliError(
                f"no flagmw store at {path}: create it once with `flagmw init`, or name "
                "the store with --store or FLAGMW_STORE (nothing creates a store by "
                "accident: a moved or unmounted folder is not replaced by an empty store)"
            )
    try:
        return _open(spec, create=create)
    except ValueError as exc:
        raise CliError(f"--store {spec}: {exc}") from None
