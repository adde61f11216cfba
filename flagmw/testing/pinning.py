"""Pin a literal RunConfig for code under test (:func:`pinned`) and in-memory clients
(:func:`memory_client`); re-exported by :mod:`flagmw.testing`."""

from __future__ import annotations

import functools
import inspect
import os
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar, Token
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from flagmw.client.client import FlagClient
from flagmw.core.candidate import make_candidate
from flagmw.core.context import EvaluationContext
from flagmw.core.provenance import DEFAULT_PROVENANCE, Layer, Provenance
from flagmw.core.registry import FlagRegistry
from flagmw.core.runconfig import RunConfig
from flagmw.errors import UnknownFlagError
from flagmw.langgraph.run import RunState, _run_var, use_run
from flagmw.stores.memory import MemoryStore

if TYPE_CHECKING:  # pragma: no cover
    pass

__all__ = ["memory_client", "pinned", "pinned_config"]


F = TypeVar("F", bound=Callable[..., Any])


def pinned_config(
    values: Mapping[str, Any],
    *,
    registry: FlagRegistry | None = None,
    snapshot_rev: int | None = None,
    context: EvaluationContext | None = None,
    environment: str = "test",
) -> RunConfig:
    """A :class:`~flagmw.runconfig.RunConfig` built from literal values.

    Args:
        values: ``{flag key: value}``.
        registry: when given, every key must be a flag of it and every value must fit
            the flag's type (the same check as a publish); the registry's defaults fill
            the keys not given. Without it the RunConfig holds exactly ``values``
            (JSON-serialisable values).
        snapshot_rev: the rev the RunConfig claims to come from (None: defaults only).
        context: its evaluation context (default: an empty one).
        environment: its environment.

    The given values carry provenance ``snapshot`` (at ``snapshot_rev``), the defaults
    ``default``.

    Raises:
        UnknownFlagError: a key the registry does not define.
        ValidationError: a value that does not fit its flag.
        TypeError: a value that is not JSON-serialisable (without a registry).
    """
    given = Provenance(Layer.SNAPSHOT, rev=snapshot_rev, scope="flagmw.testing")
    candidates = {}
    if registry is not None:
        for key in values:
            if key not in registry:
                raise UnknownFlagError(key, registry.suggest(key))
        for flag in registry:
            if flag.key in values:
                candidates[flag.key] = make_candidate(
                    flag.key, flag.coerce(values[flag.key]), given
                )
            else:
                candidates[flag.key] = make_candidate(
                    flag.key, flag.coerce(flag.default), DEFAULT_PROVENANCE
                )
    else:
        for key, value in values.items():
            try:
                candidates[key] = make_candidate(key, value, given)
            except (TypeError, ValueError) as exc:
                raise TypeError(
                    f"pinned value of {key!r} is not JSON-serialisable ({exc}); flag values "
                    "are JSON primitives"
                ) from None
    return RunConfig(
        dict(sorted(candidates.items())),
        snapshot_rev=snapshot_rev,
        snapshot_hash=None,
        environment=environment,
        context=(context or EvaluationContext()).frozen(),
        resolved_at=time.time(),
    )


class pinned:
    """Make ``flagmw.current()`` return a literal RunConfig in the code under test.

    A context manager (``with`` / ``async with``) and a decorator (on sync and async
    functions, including tests). Inside, ``flagmw.current()`` returns the pinned
    RunConfig — in plain functions, in asyncio tasks created inside, and in the nodes
    and tools of an *unwrapped* graph invoked inside (LangGraph copies the context into
    its executor threads). A wrapped graph's own run takes precedence.

    Args:
        values_or_rc: ``{flag key: value}`` (see :func:`pinned_config`) or a ready
            :class:`~flagmw.runconfig.RunConfig` (e.g. from ``client.resolve(ctx)``).
        registry: check the values against it and fill defaults from it.
        snapshot_rev: the rev the RunConfig claims.
        context: its evaluation context.

    ``with pinned(...) as rc`` gives the RunConfig.

    Raises:
        UnknownFlagError, ValidationError, TypeError: as :func:`pinned_config`, when
            the object is created.
    """

    def __init__(
        self,
        values_or_rc: Mapping[str, Any] | RunConfig,
        *,
        registry: FlagRegistry | None = None,
        snapshot_rev: int | None = None,
        context: EvaluationContext | None = None,
    ) -> None:
        if isinstance(values_or_rc, RunConfig):
            self.rc = values_or_rc
        else:
            self.rc = pinned_config(
                values_or_rc, registry=registry, snapshot_rev=snapshot_rev, context=context
            )
        # the tokens of the with-blocks entered, per context: asyncio tasks (each with
        # its own context) may enter and leave one pinned object in any order
        self._tokens: ContextVar[tuple[Token[RunState | None], ...]] = ContextVar(
            f"flagmw_pinned_{id(self):x}", default=()
        )

    def _state(self) -> RunState:
        return RunState(
            client=None,
            rc=self.rc,
            name="flagmw.testing.pinned",
            thread_id=self.rc.context.thread_id,
        )

    def __enter__(self) -> RunConfig:
        token = _run_var.set(self._state())
        self._tokens.set((*self._tokens.get(), token))
        return self.rc

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack = self._tokens.get()
        if not stack:
            raise ValueError("flagmw.testing.pinned: left without being entered in this context")
        *rest, token = stack
        self._tokens.set(tuple(rest))
        _run_var.reset(token)

    async def __aenter__(self) -> RunConfig:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def __call__(self, func: F) -> F:
        # a fresh RunState per call: the same decorated function may run concurrently
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def awrapper(*args: Any, **kwargs: Any) -> Any:
                with use_run(self._state()):
                    return await func(*args, **kwargs)

            return awrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with use_run(self._state()):
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


def memory_client(
    registry: FlagRegistry | str | os.PathLike[str],
    document: Mapping[str, Any] | str | os.PathLike[str] | None = None,
    *,
    environment: str = "test",
    clock: Callable[[], float] | None = None,
) -> FlagClient:
    """A :class:`~flagmw.client.FlagClient` on a fresh :class:`~flagmw.stores.MemoryStore`.

    Args:
        registry: a :class:`~flagmw.registry.FlagRegistry`, or the path of a flags YAML
            file (its ``flags:`` section is the registry; when ``document`` is None the
            rest of the same file is published as the snapshot).
        document: a snapshot document (mapping or YAML/JSON path) published as rev 1;
            None publishes nothing (defaults only) unless ``registry`` is a path.
        environment: the client's environment.
        clock: seconds since the epoch (default ``time.time``), e.g. a fake clock to
            test TTL expiry.

    Raises:
        ValidationError: the registry or the document is invalid.
    """
    if not isinstance(registry, FlagRegistry):
        path = registry
        registry = FlagRegistry.from_yaml(path)
        if document is None:
            document = path
    client = FlagClient(registry, MemoryStore(), environment=environment, clock=clock or time.time)
    if document is not None:
        client.publish(document, author="flagmw.testing", message="memory_client")
    return client
