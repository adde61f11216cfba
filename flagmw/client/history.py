"""Resolution as it was: recompute a RunConfig from a store's history (issue 10 §4).

Resolution is a pure function of (snapshot rev, overrides, evaluation context, time)
(:func:`flagmw.core.resolve.resolve`), the store keeps every rev and every override
(ended ones included, with their start, expiry and end), so the config a run got at a
given time can be computed again — to check a recorded ``config_hash`` after an
incident, or to replay the run (:func:`flagmw.replay`).

What cannot be recomputed: environment values (``FF_*`` variables of the process that
ran) are not in the store; a run that saw one shows it in its recorded provenance
(layer ``environment``) and will not match. Hot flags changed *during* a run are
recorded in its RunConfig's ``changes``; the recomputed config is the one at ``at``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from flagmw.client.canary import CANARY_ACTION, CONFIG_REV_ATTR
from flagmw.core.compiled import CompiledSnapshot
from flagmw.core.context import EvaluationContext
from flagmw.core.override_index import OverrideIndex
from flagmw.core.overrides import Override
from flagmw.core.registry import FlagRegistry
from flagmw.core.resolve import resolve
from flagmw.core.runconfig import RunConfig
from flagmw.core.snapshot import Snapshot, validate_document
from flagmw.errors import NotFoundError
from flagmw.stores.base import SnapshotInfo, Store

__all__ = ["HistoricalConfig", "head_at", "overrides_at", "resolve_at"]


@dataclass(frozen=True, slots=True)
class HistoricalConfig:
    """A RunConfig recomputed from the store's history.

    Attributes:
        run_config: the recomputed RunConfig (``resolved_at`` = ``at``).
        rev: the snapshot rev it was resolved against (None: no rev existed yet, so
            registry defaults and overrides only).
        at: the time it was resolved at (seconds since the epoch).
        override_ids: the overrides that were in force at ``at`` (whether or not they
            changed a value for this context).
    """

    run_config: RunConfig
    rev: int | None
    at: float
    override_ids: tuple[str, ...]

    def matches(self, config_hash: str) -> bool:
        """True when the recomputed config has ``config_hash`` (``"sha256:…"``; the bare
        hex digest is accepted too)."""
        mine = self.run_config.config_hash
        return config_hash in (mine, mine.removeprefix("sha256:"))


def head_at(store: Store, at: float) -> SnapshotInfo | None:
    """The rev that was the head at time ``at`` (the newest rev created at or before it),
    None when no rev existed yet. Reads the history, newest first."""
    limit = 200
    while True:
        infos = store.history(limit=limit)
        for info in infos:  # newest first
            if info.created_at <= at:
                return info
        if len(infos) < limit:
            return None
        limit *= 4


def overrides_at(store: Store, at: float) -> list[Override]:
    """The overrides in force at ``at``: created at or before it, not yet expired, and
    not ended before it. An override ended *after* ``at`` is returned as it was then
    (without its end), so the resolver counts it."""
    out: list[Override] = []
    for ov in store.list_overrides(include_ended=True):
        if not ov.active_at(at):
            continue
        if ov.ended_at is not None:
            ov = dataclasses.replace(ov, ended_at=None, ended_by=None, end_reason=None)
        out.append(ov)
    return out


def resolve_at(
    store: Store,
    registry: FlagRegistry,
    ctx: EvaluationContext,
    *,
    at: float,
    environment: str,
    rev: int | None = None,
) -> HistoricalConfig:
    """Recompute the RunConfig of ``ctx`` as it was at ``at``.

    Args:
        store: the store holding the history.
        registry: the application's registry (the flags resolved; the same registry the
            run used, or the one stored with the rev — :func:`flagmw.cli` passes the
            stored one unless told otherwise).
        ctx: the run's evaluation context (e.g. ``RunConfig.context`` of a recorded run).
        at: seconds since the epoch (UTC); overrides in force then are applied.
        environment: the deployment environment the run resolved for.
        rev: the snapshot rev to resolve against; default the head at ``at`` (when it
            was a config canary: the canary rev for a context assigned it, its baseline
            for any other, as a client served them).

    Raises:
        NotFoundError: ``rev`` is not in the store.
        ValueError: ``at`` is not a finite number.
        ValidationError: the rev's document does not fit ``registry``.
    """
    if isinstance(at, bool) or not isinstance(at, int | float) or not math.isfinite(at):
        raise ValueError(f"at must be a finite time in seconds since the epoch, got {at!r}")
    if rev is None:
        info = head_at(store, at)
        rev = None if info is None else info.rev
        if info is not None and info.action == CANARY_ACTION:  # a config canary head
            attrs = ctx.attributes or {}
            rev = info.rev if attrs.get(CONFIG_REV_ATTR) == info.rev else info.rollback_of
    if rev is None:
        compiled = CompiledSnapshot(registry, None, None, {})
    else:
        record = store.get_snapshot(rev)
        if record.info.rev != rev:  # pragma: no cover - a store contract violation
            raise NotFoundError(f"snapshot rev {rev} not found")
        if record.info.registry_fingerprint == registry.fingerprint:
            snapshot = Snapshot(record.document, record.info.content_hash)
        else:
            snapshot = validate_document(record.document, registry)
        compiled = CompiledSnapshot(registry, snapshot, rev, {})
    overrides = overrides_at(store, at)
    index = OverrideIndex(overrides, registry, environment)
    rc = resolve(compiled.view(environment), index, ctx, float(at))
    return HistoricalConfig(
        run_config=rc,
        rev=rev,
        at=float(at),
        override_ids=tuple(ov.id for ov in sorted(overrides, key=lambda o: o.order)),
    )
