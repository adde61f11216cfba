"""The client: the evaluation cache a process keeps (poll, refresh, generation, fork
hook) and the admin operations (publish, kill, override) on a :class:`~flagmw.stores.Store`.

The names are imported from :mod:`flagmw.client.client` on first use (PEP 562, as
:mod:`flagmw` does), so importing a submodule (``flagmw.client.arguments``) does not
import the whole client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - the lazy names, for type checkers
    from flagmw.client.client import ClientStatus, FlagClient, PublishResult, read_env_values

__all__ = ["ClientStatus", "FlagClient", "PublishResult", "read_env_values"]


def __getattr__(name: str) -> Any:
    """A public name of :mod:`flagmw.client.client` on first use; kept afterwards.

    Raises:
        AttributeError: not a public name of the client package.
    """
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from flagmw.client import client

    value = getattr(client, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
