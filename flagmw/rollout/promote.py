"""Promotion from staging to production (issue 12 §5): a snapshot or an agent version
goes to production only when its quality gates pass on the runs recorded in staging.

Staging and production are **separate stores** (any kinds: a SQLite file for staging,
PostgreSQL for production, …), each with its flag snapshots, its rollout store
(versions, outcomes, audit) and its clients. A promotion reads from the staging store,
judges the gates there, and writes to the production store:

* :func:`promote_snapshot` — gates on the staging runs recorded under the snapshot's rev
  (:func:`~flagmw.rollout.gates.check_snapshot_gates`), then publishes the same document
  as production's next rev (validated against the registry stored with the staging rev,
  or the one given), author = the actor, message ``promoted from <staging> rev N: <the
  staging message>``. The content hash in production equals staging's (checked before
  anything is written); a document equal to production's head writes nothing.
* :func:`promote_version` — gates on the staging runs (and offline results) of the
  version (:func:`~flagmw.rollout.gates.check_gates`), then publishes the immutable
  artifact (same values, prompt and content hash) to production's rollout store, after
  re-checking its values against production's registry. Publishing it again is a no-op;
  a production version of that name with other content is refused.

A required gate that fails raises :class:`PromotionRefusedError` (carrying every gate's
result) and nothing is written anywhere. A promotion that goes through appends a
``promote.snapshot`` / ``promote.version`` entry to **both** rollout audit logs, with
the gates' measured values; the production flag store's own audit log also has the
``publish`` entry of a promoted snapshot.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flagmw.client.arguments import MAX_REV
from flagmw.core.registry import FlagRegistry
from flagmw.core.source import Locator
from flagmw.errors import FlagmwError, NotFoundError
from flagmw.rollout.gates import Gate, GateResult, check_gates, check_snapshot_gates
from flagmw.rollout.store import RolloutStore, open_rollout_store
from flagmw.stores.base import Store

__all__ = ["PromoteResult", "PromotionRefusedError", "promote_snapshot", "promote_version"]


class PromotionRefusedError(FlagmwError):
    """A promotion refused (a required gate fails, or the artifact does not fit
    production); nothing was written. ``results``: every gate judged (empty when the
    refusal came before the gates)."""

    def __init__(self, message: str, results: Sequence[GateResult] = ()) -> None:
        super().__init__(message)
        self.results = list(results)


@dataclass(frozen=True)
class PromoteResult:
    """What a promotion did.

    Attributes:
        kind: ``snapshot`` or ``version``.
        source, target: the staging and production stores' names.
        ref: ``rev 7`` (the staging rev) or ``support-agent@v1.3.3``.
        content_hash: the promoted content's hash (equal on both sides).
        written: False when production already held that content (nothing written).
        target_rev: the production rev (snapshots; the head rev when nothing changed).
        gates: every gate judged on staging.
    """

    kind: str
    source: str
    target: str
    ref: str
    content_hash: str
    written: bool
    target_rev: int | None
    gates: tuple[GateResult, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON primitives."""
        return {
            "kind": self.kind,
            "source": self.source,
            "target": self.target,
            "ref": self.ref,
            "content_hash": self.content_hash,
            "written": self.written,
            "target_rev": self.target_rev,
            "gates": [r.to_dict() for r in self.gates],
        }


@contextlib.contextmanager
def _rollout_stores(source: Store, target: Store) -> Iterator[tuple[RolloutStore, RolloutStore]]:
    src = open_rollout_store(source)
    try:
        dst = open_rollout_store(target)
        try:
            yield src, dst
        finally:
            dst.close()
    finally:
        src.close()


def _refuse_on(results: list[GateResult], what: str) -> None:
    blocking = [r for r in results if r.blocking]
    if blocking:
        names = ", ".join(r.gate.name for r in blocking)
        raise PromotionRefusedError(
            f"{what} was not promoted: required gates fail ({names}); nothing was written",
            results,
        )


def promote_snapshot(
    source: Store,
    target: Store,
    gates: Sequence[Gate],
    *,
    actor: str,
    rev: int | None = None,
    environment: str | None = None,
    agent: str | None = None,
    registry: FlagRegistry | None = None,
    clock: Callable[[], float] = time.time,
) -> PromoteResult:
    """Promote staging snapshot ``rev`` (default: staging's head) to production (see
    the module docs). ``environment`` / ``agent`` restrict the staging runs judged.

    Raises:
        NotFoundError: no such rev in staging.
        PromotionRefusedError: a required gate fails, or the document would not keep
            its content hash in production (nothing written).
        ValidationError: the document does not fit ``registry`` (nothing written).
        ConflictError: production's head moved during the promotion.
    """
    with _rollout_stores(source, target) as (src, dst):
        return _promote_snapshot(
            source, target, src, dst, gates, actor, rev, environment, agent, registry, clock
        )


def _promote_snapshot(
    source: Store,
    target: Store,
    src: RolloutStore,
    dst: RolloutStore,
    gates: Sequence[Gate],
    actor: str,
    rev: int | None,
    environment: str | None,
    agent: str | None,
    registry: FlagRegistry | None,
    clock: Callable[[], float],
) -> PromoteResult:
    from flagmw.client.client import FlagClient

    if rev is not None and (
        isinstance(rev, bool) or not isinstance(rev, int) or not 1 <= rev <= MAX_REV
    ):
        raise NotFoundError(f"no snapshot rev {rev!r} in {source.name}")
    record = source.get_snapshot(rev)
    info = record.info
    results = check_snapshot_gates(src, info.rev, gates, environment=environment, agent=agent)
    _refuse_on(results, f"rev {info.rev} of {source.name}")
    if registry is None:
        loc = Locator(f"{source.name} rev {info.rev} registry")
        registry = FlagRegistry.from_dict(record.registry, locator=loc)
    client = FlagClient(registry, target, clock=clock)  # not closed: the caller owns target
    snapshot = client.validate(record.document)
    if snapshot.content_hash != info.content_hash:
        raise PromotionRefusedError(
            f"rev {info.rev} of {source.name} would be published with content hash "
            f"{snapshot.content_hash[:19]} instead of {info.content_hash[:19]} (another "
            "registry); nothing was written",
            results,
        )
    message = f"promoted from {source.name} rev {info.rev}: {info.message}"
    published = client.publish(record.document, author=actor, message=message)
    details = {
        "content_hash": info.content_hash,
        "source": source.name,
        "source_rev": info.rev,
        "target": target.name,
        "target_rev": published.rev,
        "written": published.published,
        "gates": [r.to_dict() for r in results],
    }
    now = clock()
    to = f"{target.name} rev {published.rev}" + ("" if published.published else " (unchanged)")
    src.append_audit(
        now, "promote.snapshot", actor, f"promoted to {to}", f"rev {info.rev}", details
    )
    dst.append_audit(
        now,
        "promote.snapshot",
        actor,
        f"from {source.name} rev {info.rev}",
        f"rev {published.rev}",
        details,
    )
    return PromoteResult(
        "snapshot",
        source.name,
        target.name,
        f"rev {info.rev}",
        info.content_hash,
        published.published,
        published.rev,
        tuple(results),
    )


def promote_version(
    source: Store,
    target: Store,
    agent: str,
    version: str,
    gates: Sequence[Gate],
    *,
    actor: str,
    environment: str | None = None,
    registry: FlagRegistry | None = None,
    clock: Callable[[], float] = time.time,
) -> PromoteResult:
    """Promote the published staging version ``agent`` ``version`` to production (see
    the module docs). Its values are re-checked against ``registry`` (default: the one
    stored with production's head snapshot; none published there: not re-checked).

    Raises:
        NotFoundError: no such version in staging.
        PromotionRefusedError: a required gate fails, or a value does not fit
            production's registry (nothing written).
        VersionConflictError: production has that version name with other content.
    """
    with _rollout_stores(source, target) as (src, dst):
        return _promote_version(
            source, target, src, dst, agent, version, gates, actor, environment, registry, clock
        )


def _promote_version(
    source: Store,
    target: Store,
    src: RolloutStore,
    dst: RolloutStore,
    agent: str,
    version: str,
    gates: Sequence[Gate],
    actor: str,
    environment: str | None,
    registry: FlagRegistry | None,
    clock: Callable[[], float],
) -> PromoteResult:
    v = src.get_version(agent, version)
    results = check_gates(src, agent, version, gates, environment=environment)
    _refuse_on(results, v.ref)
    if registry is None:
        head = target.head()
        if head is not None:
            rec = target.get_snapshot(head.rev, overlays=False)
            loc = Locator(f"{target.name} rev {head.rev} registry")
            registry = FlagRegistry.from_dict(rec.registry, locator=loc)
    problems = v.revalidate(registry) if registry is not None else []
    if problems:
        raise PromotionRefusedError(
            f"{v.ref} does not fit the production registry: {'; '.join(problems)}; "
            "nothing was written",
            results,
        )
    existed = _has_version(dst, agent, version)
    stored = dst.publish_version(v, author=actor, at=clock())
    details: Mapping[str, Any] = {
        "content_hash": v.content_hash,
        "source": source.name,
        "target": target.name,
        "written": not existed,
        "gates": [r.to_dict() for r in results],
    }
    now = clock()
    src.append_audit(now, "promote.version", actor, f"promoted to {target.name}", v.ref, details)
    dst.append_audit(now, "promote.version", actor, f"from {source.name}", v.ref, details)
    return PromoteResult(
        "version",
        source.name,
        target.name,
        v.ref,
        stored.content_hash,
        not existed,
        None,
        tuple(results),
    )


def _has_version(store: Any, agent: str, version: str) -> bool:
    try:
        store.get_version(agent, version)
    except NotFoundError:
        return False
    return True
