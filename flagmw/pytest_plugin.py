"""pytest fixtures for code that reads flags (registered as the ``flagmw`` pytest plugin).

``flagmw_pin``
    A function ``pin(values_or_rc, *, registry=None, snapshot_rev=None, context=None)``
    that makes ``flagmw.current()`` return a literal RunConfig until the end of the test
    (see :class:`flagmw.testing.pinned`); returns the RunConfig. Calling it again
    replaces the pin.

``flagmw_client``
    A factory ``make(registry, document=None, *, environment="test", clock=None)``
    returning :class:`~flagmw.client.FlagClient` objects on in-memory stores (see
    :func:`flagmw.testing.memory_client`), closed at the end of the test.

Example::

    def test_small_model(flagmw_pin):
        flagmw_pin({"model.primary": "gpt-4o-mini"})
        assert pick_model().name == "gpt-4o-mini"

    def test_agent(flagmw_client):
        client = flagmw_client("tests/flags.yaml")
        graph = flagmw.wrap(build_graph(), client)

Without the entry point (e.g. running from a checkout), load it with
``pytest -p flagmw.pytest_plugin`` or ``pytest_plugins = ["flagmw.pytest_plugin"]`` in
the root ``conftest.py``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # pragma: no cover
    from flagmw.client.client import FlagClient
    from flagmw.core.runconfig import RunConfig
    from flagmw.testing.pinning import pinned

# flagmw is imported when a fixture is used, not when pytest loads the plugin: an
# installed entry point loads it in every pytest session of the environment

__all__ = ["flagmw_client", "flagmw_pin"]


@pytest.fixture
def flagmw_pin() -> Iterator[Callable[..., RunConfig]]:
    """Pin a literal RunConfig for the rest of the test: ``flagmw_pin({key: value})``."""
    from flagmw.testing.pinning import pinned

    active: list[pinned] = []

    def release() -> None:
        while active:
            # a pin made inside an async test lives in that test's task context, which
            # is gone by teardown: there is nothing left to reset then
            with contextlib.suppress(ValueError):
                active.pop().__exit__(None, None, None)

    def pin(values_or_rc: Any, **kwargs: Any) -> RunConfig:
        release()
        p = pinned(values_or_rc, **kwargs)
        rc = p.__enter__()
        active.append(p)
        return rc

    yield pin
    release()


@pytest.fixture
def flagmw_client() -> Iterator[Callable[..., FlagClient]]:
    """Make in-memory clients: ``flagmw_client(registry_or_flags_yaml, document=None)``."""
    from flagmw.testing.pinning import memory_client

    made: list[FlagClient] = []

    def make(registry: Any, document: Any = None, **kwargs: Any) -> FlagClient:
        client = memory_client(registry, document, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()
