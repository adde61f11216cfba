"""FlagClient: resolution against a store, with caching, refresh and operations.

The client holds a registry and a store, caches the compiled head snapshot and the
overrides in force, and refreshes them when the store's change counter moves. The
check is cheap enough for every step boundary of every run (:meth:`FlagClient.poll`,
≈0.3 µs on the SQLite store); there is no background thread, so the client is safe
after ``fork`` and inside asyncio.

When the store cannot be read, the client keeps serving the last good snapshot and
says so in the log and in :meth:`FlagClient.status`. When the store's head snapshot
does not validate against the application's registry (schema drift after a deploy),
the client keeps the last good snapshot and reports the problems.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from flagmw.core.candidate import copy_json
from flagmw.core.compiled import CompiledSnapshot, View
from flagmw.core.context import EvaluationContext
from flagmw.core.explain import Explanation, explain
from flagmw.core.flag_spec import FlagType
from flagmw.core.override_index import OverrideIndex
from flagmw.core.overrides import Override, OverrideKind, ScopeKind, format_duration, parse_duration
from flagmw.core.registry import FlagRegistry, env_var_name
from flagmw.core.resolve import resolve, resolve_key
from flagmw.core.runconfig import RunConfig
from flagmw.core.snapshot import Change, Snapshot, diff_documents, validate_document
from flagmw.core.source import Locator, load_document
from flagmw.errors import (
    FlagmwError,
    NotFoundError,
    OverrideError,
    Problem,
    ValidationError,
)
from flagmw.stores.base import AuditEntry, SnapshotInfo, SnapshotRecord, Store
from flagmw.stores.memory import MemoryStore

__all__ = ["ClientStatus", "FlagClient", "PublishResult", "read_env_values"]

log = logging.getLogger("flagmw")

_EMPTY_CTX = EvaluationContext()
_STALE: Any = object()
_HEAD: Any = object()


@dataclass(frozen=True, slots=True)
class PublishResult:
    """What a publish or rollback did.

    Attributes:
        rev: the new snapshot rev (the head rev when nothing changed).
        content_hash: the snapshot's content hash.
        parent_rev: the rev it was published on top of.
        published: False when the document equals the head's and nothing was written.
        warnings: non-blocking problems found while validating.
    """

    rev: int
    content_hash: str
    parent_rev: int | None
    published: bool = True
    warnings: tuple[Problem, ...] = ()

    @property
    def hash(self) -> str:
        """Alias of :attr:`content_hash`."""
        return self.content_hash

    def to_dict(self) -> dict[str, Any]:
        """JSON primitives."""
        return {
            "rev": self.rev,
            "content_hash": self.content_hash,
            "parent_rev": self.parent_rev,
            "published": self.published,
            "warnings": [w.to_dict() for w in self.warnings],
        }


@dataclass(frozen=True, slots=True)
class ClientStatus:
    """The health of a client's view of its store.

    Attributes:
        store: the store's name.
        environment: the client's environment.
        snapshot_rev: the rev being served (None: defaults only).
        head_rev: the store's head rev at the last successful read.
        healthy: the last read of the store succeeded.
        stale: the client serves an older snapshot than the store's head (the store is
            unreachable, or its head failed validation).
        last_error: the last problem, or None.
        last_error_at: when (seconds since the epoch).
        rejected_rev: a head rev that failed the application's registry.
        rejected_problems: its problems.
        active_overrides: overrides in force at the last refresh.
        last_refresh_at: when the store was last read (seconds since the epoch).
    """

    store: str
    environment: str
    snapshot_rev: int | None
    head_rev: int | None
    healthy: bool
    stale: bool
    last_error: str | None
    last_error_at: float | None
    rejected_rev: int | None
    rejected_problems: tuple[Problem, ...]
    active_overrides: int
    last_refresh_at: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON primitives."""
        return {
            "store": self.store,
            "environment": self.environment,
            "snapshot_rev": self.snapshot_rev,
            "head_rev": self.head_rev,
            "healthy": self.healthy,
            "stale": self.stale,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "rejected_rev": self.rejected_rev,
            "rejected_problems": [p.to_dict() for p in self.rejected_problems],
            "active_overrides": self.active_overrides,
            "last_refresh_at": self.last_refresh_at,
        }


def read_env_values(
    registry: FlagRegistry, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Typed values of ``FF_<KEY>`` process variables (local development only).

    Text is parsed by type: bool ``true`` / ``false`` (any case); int and float as
    numbers; enum and string as is; json as JSON. ``FF_`` variables that match no flag
    are ignored.

    Raises:
        ValidationError: a variable whose value does not fit its flag, naming the
            variable.
    """
    environ = os.environ if environ is None else environ
    out: dict[str, Any] = {}
    problems: list[Problem] = []
    for flag in registry:
        name = env_var_name(flag.key)
        if name not in environ:
            continue
        text = environ[name]
        raw: Any = text
        try:
            if flag.type is FlagType.BOOL:
                low = text.strip().lower()
                raw = {"true": True, "false": False}.get(low, text)
            elif flag.type is FlagType.INT:
                raw = int(text.strip())
            elif flag.type is FlagType.FLOAT:
                raw = float(text.strip())
            elif flag.type is FlagType.JSON:
                try:
                    raw = json.loads(text)
                except ValueError as exc:
                    problems.append(
                        Problem(
                            f"${name}",
                            "",
                            f"{flag.key} is a json flag; ${name} is not valid JSON: {exc}",
                            "quote strings inside the JSON, e.g. FF_X='[\"a\"]'",
                            "wrong_type",
                        )
                    )
                    continue
        except ValueError:
            pass
        value, problem = flag.check(raw, Locator(f"${name}"), ())
        if problem is not None:
            problems.append(problem)
        else:
            out[flag.key] = value
    if problems:
        raise ValidationError(problems, "process environment (FF_ variables)")
    return out


class FlagClient:
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

    Raises:
        ValidationError: a ``FF_`` variable (with ``env_vars=True``) has a bad value.

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
    ) -> None:
        self.registry = registry
        self.store: Store = store if store is not None else MemoryStore()
        self.environment = environment
        self.clock = clock
        self.default_ttl = parse_duration(default_ttl)
        self.max_ttl = parse_duration(max_ttl)
        if self.default_ttl > self.max_ttl:
            raise OverrideError(
                f"default_ttl {format_duration(self.default_ttl)} is above "
                f"max_ttl {format_duration(self.max_ttl)}"
            )
        self._env_values = read_env_values(registry) if env_vars else {}
        self._change_token = self.store.change_token  # bound once: poll() is on the hot path
        self._lock = threading.Lock()
        self._compiled = CompiledSnapshot(registry, None, None, self._env_values)
        self._view: View = self._compiled.view(environment)
        self._overrides = OverrideIndex((), registry, environment)
        self._other_envs: dict[str, tuple[View, OverrideIndex]] = {}
        self._token: Any = None
        self._next_expiry: float | None = None
        self._generation = 0
        self._retry_at = 0.0
        self._healthy = True
        self._head_rev: int | None = None
        self._last_error: str | None = None
        self._last_error_at: float | None = None
        self._rejected: tuple[int | None, tuple[Problem, ...]] = (None, ())
        self._last_refresh_at: float | None = None
        self.refresh()

    # -- refresh -------------------------------------------------------------------------

    @property
    def generation(self) -> int:
        """A local counter that moves whenever what :meth:`resolve` would return may have
        changed: a new snapshot, an override set / renewed / ended, or an override's
        expiry passing. Compare it between step boundaries (:meth:`poll`)."""
        return self._generation

    def poll(self) -> int:
        """The cheap check at a step boundary: refresh if the store changed or an
        override expired, and return :attr:`generation`. ≈0.3 µs when nothing changed
        (one read of the store's change token, one comparison)."""
        try:
            token = self._change_token()
        except FlagmwError as exc:
            self._fail(exc)
            return self._generation
        if token != self._token:
            self.refresh()
        nxt = self._next_expiry
        if nxt is not None and self.clock() >= nxt:
            with self._lock:
                self._next_expiry = self._overrides.next_expiry_after(self.clock())
                self._generation += 1
        return self._generation

    def refresh(self, *, force: bool = False) -> bool:
        """Read the store when its change token moved (or ``force``); returns True when
        the served snapshot or overrides changed. Never raises for store problems:
        they are logged and reported by :meth:`status`."""
        now = self.clock()
        if not force and not self._healthy and now < self._retry_at:
            return False
        try:
            token = self.store.change_token()
            if token == self._token and not force:
                return False
            state = self.store.read_state(now)
        except FlagmwError as exc:
            self._fail(exc)
            return False
        changed = False
        with self._lock:
            head = state.head
            self._head_rev = head.rev if head else None
            if (
                head is not None
                and head.rev != self._compiled.rev
                and head.rev != self._rejected[0]
            ):
                compiled = self._load(head)
                if compiled is not None:
                    self._compiled = compiled
                    self._view = compiled.view(self.environment)
                    changed = True
            index = OverrideIndex(state.overrides, self.registry, self.environment)
            if changed or index.overrides != self._overrides.overrides:
                self._overrides = index
                changed = True
                for ov in index.ignored:
                    log.warning(
                        "flagmw: override %s of unknown flag %r ignored (not in this "
                        "application's registry)",
                        ov.id,
                        ov.key,
                    )
            if changed:
                self._other_envs = {}
            self._next_expiry = self._overrides.next_expiry_after(now)
            self._token = state.token
            self._last_refresh_at = now
            if not self._healthy:
                log.info(
                    "flagmw: store %s is reachable again (serving rev %s)",
                    self.store.name,
                    self._compiled.rev,
                )
            self._healthy = True
            if changed:
                self._generation += 1
        return changed

    def _load(self, head: SnapshotInfo) -> CompiledSnapshot | None:
        """Compile the head snapshot, validating it when it was published against a
        different registry; None (and a report) when it does not fit."""
        try:
            record = self.store.get_snapshot(head.rev)
        except FlagmwError as exc:
            self._fail(exc)
            return None
        if record.info.registry_fingerprint == self.registry.fingerprint:
            snapshot = Snapshot(record.document, record.info.content_hash)
        else:
            try:
                snapshot = validate_document(
                    record.document,
                    self.registry,
                    locator=Locator(f"{self.store.name} rev {head.rev}"),
                )
            except ValidationError as exc:
                self._rejected = (head.rev, exc.errors)
                self._last_error = (
                    f"snapshot rev {head.rev} does not fit this application's "
                    f"registry ({len(exc.errors)} problems); serving rev "
                    f"{self._compiled.rev}"
                )
                self._last_error_at = self.clock()
                log.error(
                    "flagmw: %s:\n%s", self._last_error, "\n".join(f"  - {p}" for p in exc.errors)
                )
                return None
        self._rejected = (None, ())
        return CompiledSnapshot(self.registry, snapshot, head.rev, self._env_values)

    def _fail(self, exc: Exception) -> None:
        now = self.clock()
        if self._healthy:
            log.warning(
                "flagmw: store %s unavailable (%s); serving the last good snapshot (rev %s)",
                self.store.name,
                exc,
                self._compiled.rev,
            )
        self._healthy = False
        self._last_error = str(exc)
        self._last_error_at = now
        self._retry_at = now + 1.0
        # a token no store returns: the next poll() goes to refresh(), which retries the
        # store once _retry_at has passed and marks the client healthy again on success
        self._token = _STALE

    def status(self) -> ClientStatus:
        """The client's view of its store (see :class:`ClientStatus`)."""
        rejected_rev, problems = self._rejected
        stale = (
            (not self._healthy)
            or (rejected_rev is not None)
            or (self._head_rev is not None and self._head_rev != self._compiled.rev)
        )
        return ClientStatus(
            store=self.store.name,
            environment=self.environment,
            snapshot_rev=self._compiled.rev,
            head_rev=self._head_rev,
            healthy=self._healthy,
            stale=stale,
            last_error=self._last_error,
            last_error_at=self._last_error_at,
            rejected_rev=rejected_rev,
            rejected_problems=problems,
            active_overrides=len(self._overrides.overrides),
            last_refresh_at=self._last_refresh_at,
        )

    # -- resolution ----------------------------------------------------------------------

    def _scope(self, env: str | None) -> tuple[View, OverrideIndex]:
        """The compiled view and the override index of an environment (the client's
        when ``env`` is None); other environments are built on first use and dropped at
        the next refresh that changes anything."""
        if env is None or env == self.environment:
            return self._view, self._overrides
        pair = self._other_envs.get(env)
        if pair is None:
            pair = (
                self._compiled.view(env),
                OverrideIndex(self._overrides.overrides, self.registry, env),
            )
            self._other_envs[env] = pair
        return pair

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
        return resolve(*self._scope(ctx.environment), ctx, self.clock() if at is None else at)

    def resolve_hot(
        self, rc: RunConfig, *, step: int | None = None, at: float | None = None
    ) -> RunConfig:
        """Re-resolve the hot keys of a run's RunConfig against the current snapshot and
        overrides; pinned keys never change. Returns ``rc`` itself when nothing changed,
        else a new RunConfig that records each change (:attr:`RunConfig.changes`)."""
        if not self.registry.hot_keys:
            return rc
        now = self.clock() if at is None else at
        ctx = rc.context
        fresh = resolve(*self._scope(rc.environment), ctx, now)
        return rc.with_hot(fresh, self.registry.hot_keys, at=now, step=step)

    def _candidate(self, key: str, ctx: EvaluationContext | None) -> Any:
        # poll() inlined for the common "nothing changed" case: this is the evaluation
        # path of code outside a graph (client.is_enabled / value)
        try:
            token = self._change_token()
        except FlagmwError as exc:
            self._fail(exc)
            token = self._token
        nxt = self._next_expiry
        if token != self._token or (nxt is not None and self.clock() >= nxt):
            self.poll()
        if ctx is None:
            ctx = _EMPTY_CTX
        env = ctx[6]  # EvaluationContext.environment
        if env is None or env == self.environment:
            view, ov = self._view, self._overrides
        else:
            view, ov = self._scope(env)
        return resolve_key(view, ov, key, ctx, self.clock() if ov.slots else 0.0)

    def value(self, key: str, ctx: EvaluationContext | None = None) -> Any:
        """The value of one flag for ``ctx``, for code outside a graph.

        Raises:
            UnknownFlagError: ``key`` is not in the registry.
        """
        cand = self._candidate(key, ctx)
        return copy_json(cand.value) if cand.mutable else cand.value

    def is_enabled(self, key: str, ctx: EvaluationContext | None = None) -> bool:
        """The value of a bool flag for ``ctx``, for code outside a graph.

        Raises:
            UnknownFlagError: ``key`` is not in the registry.
            TypeError: the flag is not a bool flag.
        """
        value = self._candidate(key, ctx)[0]
        if value is True or value is False:
            return value
        raise TypeError(f"{key} is not a bool flag; use client.value({key!r}, ctx)")

    def variant(self, experiment: str, ctx: EvaluationContext | None = None) -> str | None:
        """The variant ``experiment`` assigns to ``ctx``, or None when it does not apply.

        Raises:
            NotFoundError: the head snapshot has no such experiment.
        """
        self.poll()
        ctx = ctx or _EMPTY_CTX
        view = self._scope(ctx.environment)[0]
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
        return explain(*self._scope(ctx.environment), key, ctx, now, every)

    @property
    def snapshot_rev(self) -> int | None:
        """The rev being served (None: nothing published, defaults only)."""
        return self._compiled.rev

    # -- snapshots -----------------------------------------------------------------------

    def validate(self, source: str | os.PathLike[str] | Mapping[str, Any]) -> Snapshot:
        """Validate a snapshot document against the registry without publishing.

        Raises:
            ValidationError: every problem, located.
        """
        return validate_document(source, self.registry)

    def publish(
        self,
        source: str | os.PathLike[str] | Mapping[str, Any],
        *,
        author: str,
        message: str,
        parent_rev: int | None = _HEAD,
    ) -> PublishResult:
        """Validate and publish a snapshot document as the next rev.

        Args:
            source: a YAML/JSON file or a mapping (a ``flags:`` section is ignored; it
                is the registry).
            author: who publishes (mandatory).
            message: why (mandatory).
            parent_rev: the rev the document was based on (optimistic concurrency); the
                store's head at the time of the call when omitted.

        Returns:
            the new rev, its content hash and its parent. When the document equals the
            head's, nothing is written and ``published`` is False.

        Raises:
            ValidationError: the document is invalid (nothing is published).
            ConflictError: ``parent_rev`` is not the head any more.
            OverrideError: missing author or message.
        """
        _require(author, "author")
        _require(message, "message")
        data, locator = load_document(source)
        snapshot = validate_document(data, self.registry, locator=locator)
        warnings = list(snapshot.warnings)
        if isinstance(data, Mapping) and isinstance(data.get("flags"), Mapping):
            try:
                file_registry = FlagRegistry.from_dict(data, locator=locator)
            except ValidationError as exc:
                raise ValidationError(exc.problems, locator.source) from None
            if file_registry.fingerprint != self.registry.fingerprint:
                warnings.append(
                    Problem(
                        locator.source,
                        "flags",
                        "the flags: section differs from "
                        "the registry this client validates against",
                        "the snapshot was validated against the client's registry",
                        "registry_mismatch",
                        "warning",
                    )
                )
        return self._publish(
            snapshot,
            author=author,
            message=message,
            parent_rev=parent_rev,
            warnings=tuple(warnings),
        )

    def _publish(
        self,
        snapshot: Snapshot,
        *,
        author: str,
        message: str,
        parent_rev: Any,
        warnings: tuple[Problem, ...] = (),
        action: str = "publish",
        rollback_of: int | None = None,
    ) -> PublishResult:
        head = self.store.head()
        if parent_rev is _HEAD:
            parent_rev = head.rev if head else None
        if (
            head is not None
            and parent_rev == head.rev
            and head.content_hash == snapshot.content_hash
            and head.registry_fingerprint == self.registry.fingerprint
        ):
            return PublishResult(head.rev, head.content_hash, head.parent_rev, False, warnings)
        info = self.store.publish(
            snapshot.document,
            self.registry.to_dict(),
            content_hash=snapshot.content_hash,
            registry_fingerprint=self.registry.fingerprint,
            parent_rev=parent_rev,
            author=author,
            message=message,
            at=self.clock(),
            action=action,
            rollback_of=rollback_of,
        )
        self.refresh()
        return PublishResult(info.rev, info.content_hash, info.parent_rev, True, warnings)

    def rollback(
        self, rev: int, *, author: str, message: str, parent_rev: int | None = _HEAD
    ) -> PublishResult:
        """Publish the content of an older rev as a new rev.

        Raises:
            NotFoundError: no such rev.
            ValidationError: the old content does not fit the current registry.
            ConflictError: someone published meanwhile.
        """
        _require(author, "author")
        _require(message, "message")
        record = self.store.get_snapshot(rev)
        snapshot = validate_document(
            record.document, self.registry, locator=Locator(f"{self.store.name} rev {rev}")
        )
        return self._publish(
            snapshot,
            author=author,
            message=message,
            parent_rev=parent_rev,
            action="rollback",
            rollback_of=rev,
        )

    def history(self, limit: int = 50) -> list[SnapshotInfo]:
        """The most recent snapshot revs, newest first."""
        return self.store.history(limit)

    def get_snapshot(self, rev: int | None = None) -> SnapshotRecord:
        """One snapshot rev (the head when None)."""
        return self.store.get_snapshot(rev)

    def diff(self, rev_a: int, rev_b: int) -> list[Change]:
        """The changes from rev ``rev_a`` to rev ``rev_b``."""
        a = self.store.get_snapshot(rev_a).document
        b = self.store.get_snapshot(rev_b).document
        return diff_documents(a, b)

    # -- overrides -----------------------------------------------------------------------

    def kill(
        self,
        key: str,
        *,
        reason: str,
        actor: str,
        ttl: str | float | None = None,
        tenant: str | None = None,
        route: str | None = None,
        force: bool = False,
        environment: str | None = None,
    ) -> Override:
        """Turn a bool flag off in the emergency layer, for a TTL.

        Args:
            key: a bool flag.
            reason: why (mandatory, non-empty; shown in refusals and in the trace).
            actor: who (mandatory).
            ttl: how long, e.g. ``"4h"`` or seconds (default :attr:`default_ttl`, at
                most :attr:`max_ttl`).
            tenant / route: narrow the scope (global when both are None).
            force: also turn off a ``protected`` flag for tenants that require it
                (audited as ``kill.forced``).
            environment: only in this environment (default: every environment).

        Raises:
            UnknownFlagError: no such flag.
            OverrideError: missing reason or actor, a non-bool flag, a TTL above the
                maximum, both tenant and route, or a tenant-scoped kill of a protected
                flag the tenant requires, without ``force``.
        """
        flag = self.registry[key]
        if flag.type is not FlagType.BOOL:
            raise OverrideError(
                f"a kill turns a bool flag off; {key} is {_article(flag.type)} {flag.type} flag "
                "(use an override: `flagmw override KEY VALUE`)"
            )
        return self._set(
            key,
            False,
            OverrideKind.KILL,
            reason=reason,
            actor=actor,
            ttl=ttl,
            tenant=tenant,
            route=route,
            force=force,
            environment=environment,
        )

    def override(
        self,
        key: str,
        value: Any,
        *,
        reason: str,
        actor: str,
        ttl: str | float | None = None,
        tenant: str | None = None,
        route: str | None = None,
        force: bool = False,
        environment: str | None = None,
    ) -> Override:
        """Force a flag to ``value`` in the emergency layer, for a TTL (see :meth:`kill`
        for the arguments).

        Raises:
            UnknownFlagError, OverrideError: as :meth:`kill`.
            ValidationError: ``value`` does not fit the flag's type.
        """
        flag = self.registry[key]
        value = flag.coerce(value)
        return self._set(
            key,
            value,
            OverrideKind.OVERRIDE,
            reason=reason,
            actor=actor,
            ttl=ttl,
            tenant=tenant,
            route=route,
            force=force,
            environment=environment,
        )

    def _ttl(self, ttl: str | float | None) -> float:
        if ttl is None:
            return self.default_ttl
        try:
            seconds = parse_duration(ttl)
        except ValueError as exc:
            raise OverrideError(str(exc)) from None
        if seconds > self.max_ttl:
            raise OverrideError(
                f"TTL {format_duration(seconds)} is above the maximum "
                f"{format_duration(self.max_ttl)}; renew it before it expires "
                "instead"
            )
        return seconds

    def _set(
        self,
        key: str,
        value: Any,
        kind: OverrideKind,
        *,
        reason: str,
        actor: str,
        ttl: str | float | None,
        tenant: str | None,
        route: str | None,
        force: bool,
        environment: str | None,
    ) -> Override:
        _require(reason, "reason")
        _require(actor, "actor")
        if tenant is not None and route is not None:
            raise OverrideError(
                "give a tenant or a route, not both (the scope is one of global, tenant, route)"
            )
        seconds = self._ttl(ttl)
        flag = self.registry[key]
        if flag.protected and value is False and not force and tenant is not None:
            tdoc = self._compiled.document["tenants"].get(tenant)
            if tdoc is not None and key in tdoc.get("requires", ()):
                raise OverrideError(
                    f"tenant {tenant} requires {key} (a protected flag); turning "
                    "it off for that tenant needs force=True (--force), which is "
                    "audited"
                )
        scope = (
            ScopeKind.TENANT
            if tenant is not None
            else ScopeKind.ROUTE
            if route is not None
            else ScopeKind.GLOBAL
        )
        now = self.clock()
        ov = Override(
            id="",
            key=key,
            value=value,
            kind=kind,
            scope=scope,
            target=tenant if tenant is not None else route,
            reason=reason.strip(),
            actor=actor.strip(),
            created_at=now,
            expires_at=now + seconds,
            force=force,
            environment=environment,
        )
        action = (
            f"{kind.value}.forced" if force and kind is OverrideKind.KILL else f"{kind.value}.set"
        )
        stored = self.store.add_override(ov, audit_action=action)
        self.refresh()
        return stored

    def exempt_tenants(self, key: str) -> list[str]:
        """Tenants of the served snapshot that require ``key`` (a global kill without
        ``force`` does not reach them)."""
        return sorted(
            t
            for t, doc in self._compiled.document["tenants"].items()
            if key in doc.get("requires", ())
        )

    def renew(
        self, override_id: str, *, actor: str, reason: str, ttl: str | float | None = None
    ) -> Override:
        """Extend an active override: it now expires ``ttl`` from now.

        Raises:
            NotFoundError: no such override.
            OverrideError: it already ended or expired, or the TTL is above the maximum.
        """
        _require(reason, "reason")
        _require(actor, "actor")
        seconds = self._ttl(ttl)
        now = self.clock()
        ov = self.store.get_override(override_id)
        if not ov.active_at(now):
            raise OverrideError(
                f"{override_id} is no longer active (ended or expired); set a new one instead"
            )
        out = self.store.renew_override(
            override_id, now + seconds, actor=actor.strip(), reason=reason.strip(), at=now
        )
        self.refresh()
        return out

    def end_override(self, override_id: str, *, actor: str, reason: str) -> Override:
        """End an override or kill early.

        Raises:
            NotFoundError: no such override.
            OverrideError: it already ended, or a missing reason or actor.
        """
        _require(reason, "reason")
        _require(actor, "actor")
        ov = self.store.get_override(override_id)
        if ov.ended_at is not None:
            raise OverrideError(f"{override_id} already ended at {ov.ended_at} by {ov.ended_by}")
        out = self.store.end_override(
            override_id, actor=actor.strip(), reason=reason.strip(), at=self.clock()
        )
        self.refresh()
        return out

    unkill = end_override

    def overrides(
        self, *, include_ended: bool = False, include_expired: bool = False
    ) -> list[Override]:
        """Overrides in the store, newest first (by default only those in force now)."""
        now = self.clock()
        out = self.store.list_overrides(include_ended=include_ended)
        if not include_expired:
            out = [o for o in out if o.expires_at > now or (include_ended and o.ended_at)]
        return out

    def audit(self, limit: int = 100, *, action: str | None = None) -> list[AuditEntry]:
        """The most recent audit entries, newest first."""
        return self.store.audit(limit, action=action)

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


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _require(value: str | None, what: str) -> None:
    if value is None or not str(value).strip():
        raise OverrideError(f"a {what} is required and must not be empty")
