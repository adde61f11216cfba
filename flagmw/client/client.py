"""FlagClient: resolution against a store, with caching, refresh and operations.

One public class composed of two concepts: the evaluation cache
(:mod:`flagmw.client.cache`: poll, refresh, generation, status) and the admin operations
(:mod:`flagmw.client.admin`: publish, rollback, kill, override, renew, end, history,
audit). This module adds the evaluation API (``resolve``, ``resolve_hot``, ``value``,
``is_enabled``, ``variant``, ``explain``) on top of the cache.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from flagmw.client.admin import AdminOperations
from flagmw.client.async_ops import AsyncOperations
from flagmw.client.cache import EvaluationCache
from flagmw.client.canary import CanaryPublishing
from flagmw.client.env import read_env_values
from flagmw.client.overlay_publish import OverlayPublishing
from flagmw.client.results import ClientStatus, PublishResult
from flagmw.client.scope import unknown_target
from flagmw.client.snapshot_reads import SnapshotReads
from flagmw.core.candidate import Candidate, copy_json
from flagmw.core.context import EvaluationContext
from flagmw.core.explain import Explanation, explain
from flagmw.core.overrides import Override, format_duration, parse_duration
from flagmw.core.provenance import Layer
from flagmw.core.registry import FlagRegistry
from flagmw.core.resolve import resolve, resolve_key
from flagmw.core.runconfig import RunConfig
from flagmw.core.split_units import missing_unit
from flagmw.errors import FlagmwError, NotFoundError, OverrideError
from flagmw.stores.base import Store

__all__ = ["ClientStatus", "FlagClient", "PublishResult", "read_env_values"]

_EMPTY_CTX = EvaluationContext()


class FlagClient(
    EvaluationCache,
    AdminOperations,
    OverlayPublishing,
    CanaryPublishing,
    SnapshotReads,
    AsyncOperations,
):
    """Resolves flags for runs from a store, and operates the store.

    Args:
        registry: the application's registry.
        store: where snapshots and overrides live (default: a new :class:`MemoryStore`).
        environment: the deployment environment (``"production"``, ``"staging"`` …);
            selects the snapshot's ``environments`` slice.
        clock: seconds since the epoch (UTC); injectable for tests.
        env_vars: read ``FF_<KEY>`` process variables into the environment layer (local
            development only; read once, here).
        default_ttl: TTL of a kill or override when none is given (default 4 h).
        max_ttl: the longest TTL accepted (default 24 h).
        last_good_file: a local file where the client keeps the last snapshot and
            overrides it served (:mod:`flagmw.client.last_good`), and starts from when the
            store cannot be reached at start-up (then unhealthy and stale until the store
            answers).
        startup_timeout: seconds to keep trying an unreachable store at start-up when no
            usable ``last_good_file`` exists, before raising: a client never starts
            serving registry defaults because its store was down (0: try once).

    Raises:
        ValidationError: a ``FF_`` variable (with ``env_vars=True``) has a bad value.
        StoreUnavailableError: the store could not be read within ``startup_timeout``
            seconds and there is no usable ``last_good_file``.

    Example::

        client = FlagClient(FlagRegistry.from_yaml("flags.yaml"), SQLiteStore("flagmw.db"),
                            environment="production")
        rc = client.resolve(EvaluationContext(tenant_id="acme", user_id="u-17"))
        rc["model.primary"], rc.snapshot_rev, rc.provenance["model.primary"].layer
    """

    def __init__(
        self,
        registry: FlagRegistry,
        store: Store | None = None,
        *,
        environment: str = "production",
        clock: Callable[[], float] = time.time,
        env_vars: bool = False,
        default_ttl: str | float = "4h",
        max_ttl: str | float = "24h",
        last_good_file: str | os.PathLike[str] | None = None,
        startup_timeout: float = 10.0,
    ) -> None:
        self.default_ttl = parse_duration(default_ttl)
        self.max_ttl = parse_duration(max_ttl)
        if self.default_ttl > self.max_ttl:
            raise OverrideError(
                f"default_ttl {format_duration(self.default_ttl)} is above "
                f"max_ttl {format_duration(self.max_ttl)}"
            )
        if store is None:
            from flagmw.stores.memory import MemoryStore

            store = MemoryStore()
        env_values = read_env_values(registry) if env_vars else {}
        super().__init__(
            registry,
            store,
            environment,
            clock,
            env_values,
            last_good_file=last_good_file,
            startup_timeout=startup_timeout,
        )

    # -- resolution ----------------------------------------------------------------------

    #: Set by :func:`flagmw.rollout.attach`: adds the run's agent version to a context
    #: (a function that never raises); None: no version assignment.
    assign_version: Callable[[EvaluationContext], EvaluationContext] | None = None
    #: Set by :func:`flagmw.rollout.attach`: True when a pinned context's agent version
    #: was killed (a resumed run is then assigned again); None: never.
    version_killed: Callable[[EvaluationContext], bool] | None = None

    def resolve(
        self, ctx: EvaluationContext | None = None, *, at: float | None = None
    ) -> RunConfig:
        """Resolve every flag for ``ctx`` (the RunConfig of a run that starts now).

        Args:
            ctx: the evaluation context (an empty one when None).
            at: the time to resolve at (seconds since the epoch); now when None.
        """
        self.poll()
        ctx = ctx or _EMPTY_CTX
        assign = self.assign_version
        if assign is not None:
            ctx = assign(ctx)  # flagmw.rollout: the run's agent version, as attributes
        # a config canary's candidate gets the canary rev (flagmw.client.canary)
        scope = self._scope(ctx.environment) if self._canary is None else self._scope_of(ctx)
        return resolve(*scope, ctx, self.clock() if at is None else at)

    def resolve_hot(
        self, rc: RunConfig, *, step: int | None = None, at: float | None = None
    ) -> RunConfig:
        """Re-resolve the hot keys of a run's RunConfig against the current snapshot and
        overrides; pinned keys never change. Returns ``rc`` itself when nothing changed,
        else a new RunConfig that records each change (:attr:`RunConfig.changes`). A run
        assigned a config canary's rev re-resolves against that rev while it is the head
        (:mod:`flagmw.client.canary`)."""
        if not self.registry.hot_keys:
            return rc
        now = self.clock() if at is None else at
        ctx = rc.context
        if self._canary is None:
            scope = self._scope(rc.environment)
        else:
            scope = self._scope_of(ctx._replace(environment=rc.environment))
        fresh = resolve(*scope, ctx, now)
        return rc.with_hot(fresh, self.registry.hot_keys, at=now, step=step)

    def _candidate(self, key: str, ctx: EvaluationContext | None) -> Any:
        # poll() inlined for the common "nothing changed" case: this is the evaluation
        # path of code outside a graph (client.is_enabled / value)
        try:
            token = self._change_token()
        except FlagmwError as exc:
            self._fail(exc)
            token = self._token
        nxt = self._next_change
        if token != self._token or (nxt is not None and self.clock() >= nxt):
            self.poll()
        if ctx is None:
            ctx = _EMPTY_CTX
        env = ctx.environment
        if self._canary is None and (env is None or env == self.environment):
            view, ov = self._view, self._overrides
        else:
            view, ov = self._scope_of(ctx)
        return resolve_key(view, ov, key, ctx, self.clock() if ov.slots else 0.0)

    def candidate(self, key: str, ctx: EvaluationContext | None = None) -> Candidate:
        """The value and provenance of one flag for ``ctx``: the evaluation
        :meth:`value` and :meth:`is_enabled` make (one path, no store I/O when nothing
        changed), for adapters that report why a value won (the OpenFeature provider).
        A json value is the client's own: copy it (``copy_json``) before handing it out.

        Raises:
            UnknownFlagError: ``key`` is not in the registry.
        """
        cand: Candidate = self._candidate(key, ctx)
        return cand

    def missing_unit(
        self, key: str, ctx: EvaluationContext | None = None, winner: Layer = Layer.DEFAULT
    ) -> str | None:
        """The context field (``user_id``, ``tenant_id``, ``thread_id`` or ``run_id``)
        that an enabled experiment on ``key``, or a percentage rollout of a rule that sets
        ``key`` (global, environment, the context's tenant or route), buckets by — whose
        condition admits ``ctx`` — and ``ctx`` lacks: the split cannot place the context
        (OpenFeature's ``TARGETING_KEY_MISSING``); else None. Only splits at or above
        ``winner``, the layer that decided the value, count. Reads only the served
        snapshot."""
        ctx = ctx or _EMPTY_CTX
        return missing_unit(self._scope_of(ctx)[0], key, ctx, winner)

    def served(self) -> tuple[int | None, Mapping[str, Any], tuple[Override, ...]]:
        """What the client serves now, without I/O: the snapshot rev (None: defaults
        only), its normalised document (every section present; read it, never change
        it) and the overrides it holds (as the store listed them)."""
        return self._compiled.rev, self._compiled.document, self._overrides.overrides

    def unknown_target(self, *, tenant: str | None, route: str | None) -> str | None:
        """Why an override scoped to ``tenant`` / ``route`` would reach no run the served
        snapshot describes (no overlay of that name), else None
        (:func:`flagmw.client.scope.unknown_target`)."""
        return unknown_target(self._compiled, tenant, route)

    def value(self, key: str, ctx: EvaluationContext | None = None) -> Any:
        """The value of one flag for ``ctx``, for code outside a graph.

        Raises:
            UnknownFlagError: ``key`` is not in the registry.
        """
        cand = self._candidate(key, ctx)
        return copy_json(cand.value) if cand.mutable else cand.value

    def is_enabled(self, key: str, ctx: EvaluationContext | None = None, **context: Any) -> bool:
        """The value of a bool flag for ``ctx``, for code outside a graph.

        The context may be given as keyword arguments instead, as the systems teams
        migrate from read: ``client.is_enabled("use_v3_style", user_id="u-1",
        plan="pro")`` is ``client.is_enabled("use_v3_style", EvaluationContext(
        user_id="u-1", plan="pro"))`` — the same evaluation. ``key`` may be a ``str``
        Enum member (:meth:`FlagRegistry.from_enum`).

        Raises:
            UnknownFlagError: ``key`` is not in the registry.
            TypeError: the flag is not a bool flag, or both ``ctx`` and keywords.
        """
        if context:
            if ctx is not None:
                raise TypeError("give the context as ctx or as keywords, not both")
            ctx = EvaluationContext(**context)
        value = self._candidate(key, ctx)[0]
        if value is True or value is False:
            return value
        raise TypeError(f"{key} is not a bool flag; use client.value({key!r}, ctx)")

    def is_enabled_for_org(self, key: str, org_id: str) -> bool:
        """:meth:`is_enabled` for an organisation: its tenant overlay, rules and
        tenant-unit rollouts (``org_id`` is the ``tenant_id``)."""
        return self.is_enabled(key, tenant_id=org_id)

    def variant(self, experiment: str, ctx: EvaluationContext | None = None) -> str | None:
        """The variant ``experiment`` assigns to ``ctx``, or None when it does not apply.

        Raises:
            NotFoundError: the head snapshot has no such experiment.
        """
        self.poll()
        ctx = ctx or _EMPTY_CTX
        view = self._scope_of(ctx)[0]
        for exp in view.experiments:
            if exp.name == experiment:
                i = exp.assign(ctx)
                return exp.variant_names[i] if i >= 0 else None
        if experiment in view.compiled.document["experiments"]:
            return None  # disabled
        raise NotFoundError(f"no experiment {experiment!r} in snapshot rev {view.rev}")

    def explain(
        self, key: str, ctx: EvaluationContext | None = None, *, at: float | None = None
    ) -> Explanation:
        """Why ``key`` has its value for ``ctx``: the winner (layer, rule, rev, override)
        and every candidate it shadowed.

        Raises:
            UnknownFlagError: ``key`` is not in the registry.
        """
        self.poll()
        ctx = ctx or _EMPTY_CTX
        now = self.clock() if at is None else at
        try:
            every = self.store.list_overrides(include_ended=True, key=key)
        except FlagmwError:
            every = list(self._overrides.overrides)
        return explain(*self._scope_of(ctx), key, ctx, now, every)

    def pinned_version_killed(self, rc: RunConfig) -> bool:
        """True when the agent version pinned in ``rc`` was killed since
        (:attr:`version_killed`): a resumed run is then assigned again instead of
        finishing on it. Never raises (a flag decision never crashes a run)."""
        check = self.version_killed
        try:
            return check is not None and check(rc.context)
        except Exception:
            return False

    def record_feedback(self, run_id: str, score: float, comment: str = "") -> None:
        """Record feedback on a finished run (a user's thumbs, a grader's score) in the
        rollout store, where guardrails and ``flagmw rollout status`` read it.

        Raises:
            FlagmwError: ``score`` is not a finite number, or ``run_id`` is empty.
            StoreUnavailableError: the store could not be written.
        """
        from flagmw.rollout.store import open_rollout_store

        if not isinstance(score, int | float) or isinstance(score, bool) or score != score:
            raise FlagmwError(f"feedback score must be a number, got {score!r}")
        if not run_id:
            raise FlagmwError("feedback needs the run_id of the run it is about")
        rs = getattr(self, "_rollout_store", None)
        if rs is None:
            rs = self._rollout_store = open_rollout_store(self.store)
        rs.record_feedback(str(run_id)[:200], float(score), str(comment)[:2000], self.clock())

    def close(self) -> None:
        """Close the store."""
        self.store.close()

    def __enter__(self) -> FlagClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"FlagClient({len(self.registry)} flags, store={self.store.name}, "
            f"environment={self.environment!r}, rev={self.snapshot_rev})"
        )
