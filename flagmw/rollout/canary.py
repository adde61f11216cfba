"""Config canaries (issue 12 §3): a snapshot rev rolled out like an agent version.

``flagmw publish flags.yaml --canary 1,10,100 --unit tenant`` (:func:`start_canary`)

1. publishes the document as rev N, the head, marked ``action="canary"`` over the
   previous head B (:mod:`flagmw.client.canary`: a client serves B by default and N only
   to contexts assigned it — a worker that does not take part never serves N);
2. starts the rollout ``config-rev-N`` (``kind="config"``, candidate ``rev-N``, baseline
   ``rev-B``) in the rollout store: the same stage machine, sticky bucketing, guardrails,
   SRM check, controller tick, pause / advance / abort, audit and status as agent
   versions (:mod:`flagmw.rollout.controller`). The rollout runtime assigns each new run
   an arm (``flagmw.config_rev``, ``flagmw.rollout``, ``flagmw.stage``, ``flagmw.arm``),
   pinned in its checkpoint with the RunConfig.

How a canary ends — the flag store's head is the truth, the rollout record follows:

* **completed** (the 100 % stage passed): the controller publishes N's document again as
  a plain rev N+1, so every worker, taking part or not, serves N's content;
* **rolled back or aborted** (a guardrail failed, an operator): the controller publishes
  B's document as a rollback rev N+1 (``rollback_of=B``): every worker serves B's content
  at its next poll.

The final publish happens *before* the rollout record changes, with N as its expected
parent: when it fails (the store is down, someone else ended the canary) the transition
raises and nothing is recorded — a rollback that did not commit never reports success.
When the publish committed but the record could not be written, the next tick records
how the canary ended from the head (:func:`settle`).

Only one rollout assigns a run: a config canary does not start while any rollout is
active, and no rollout starts while a config canary is active.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flagmw.client.canary import CANARY_ACTION, canary_name, refuse_during_canary
from flagmw.rollout.stages import Rollout, RolloutError

if TYPE_CHECKING:  # pragma: no cover
    from flagmw.client.client import FlagClient
    from flagmw.client.results import PublishResult
    from flagmw.rollout.controller import RolloutController, TickResult
    from flagmw.stores.base import SnapshotInfo, Store

__all__ = [
    "AGENT",
    "CONFIG",
    "CanaryStart",
    "before_transition",
    "config_revs",
    "settle",
    "start_canary",
]

log = logging.getLogger("flagmw")

#: the ``kind`` of a config canary's rollout
CONFIG = "config"
#: the ``agent`` of a config canary's rollout (it assigns every route's runs)
AGENT = "snapshot"


def rev_label(rev: int) -> str:
    """``rev-12``: how a snapshot rev stands as a rollout's candidate or baseline."""
    return f"rev-{rev}"


def config_revs(r: Rollout) -> tuple[int, int]:
    """The candidate and baseline snapshot revs of a config rollout.

    Raises:
        RolloutError: ``r`` is not a config canary's rollout.
    """
    try:
        return int(r.candidate.removeprefix("rev-")), int(r.baseline.removeprefix("rev-"))
    except ValueError:
        raise RolloutError(f"rollout {r.name!r} is not a config canary") from None


@dataclass(frozen=True)
class CanaryStart:
    """What :func:`start_canary` did: the canary rev's publish and its rollout."""

    publish: PublishResult
    rollout: Rollout


def start_canary(
    client: FlagClient,
    source: str | os.PathLike[str] | Mapping[str, Any],
    *,
    stages: Sequence[float] | str = (1, 10, 100),
    unit: str = "tenant",
    min_duration: str | float = "30m",
    min_runs: int = 200,
    guardrails: Sequence[Mapping[str, Any]] = (),
    author: str,
    message: str,
    controller: RolloutController | None = None,
) -> CanaryStart:
    """Publish ``source`` as a canary rev over the head and start its rollout
    ``config-rev-<rev>`` (see the module docs).

    Args:
        client: a client of the flag store (it validates the document).
        source: a YAML/JSON file or a mapping, as :meth:`FlagClient.publish`.
        stages: the canary's share per stage, percent (``"1,10,100"``), ending at 100.
        unit: the sticky unit: ``tenant``, ``user``, ``thread`` or ``run``.
        min_duration: the shortest stage (``"30m"``, seconds; 0: none).
        min_runs: candidate runs a stage needs before it is judged.
        guardrails: parsed guardrails (:func:`flagmw.rollout.guardrails.parse_guardrail`);
            default: the built-in set.
        author, message: who and why (mandatory).
        controller: the controller to start it with (default: one on the client's store).

    Raises:
        RolloutError: bad stages, unit or duration, or a rollout is active (nothing
            published).
        ValidationError: the document is invalid (nothing published).
        CanaryInProgressError: the head is a canary already.
        FlagmwError: nothing published yet, or the document equals the head's.
        StoreUnavailableError: a store cannot be written (a canary published without its
            rollout is rolled back before this is raised).
    """
    from flagmw.rollout.controller import RolloutController, _duration
    from flagmw.rollout.store import open_rollout_store

    if controller is None:
        rs = open_rollout_store(client.store)
        try:
            ctl = RolloutController(rs, flags=client.store, clock=client.clock)
            return start_canary(
                client,
                source,
                stages=stages,
                unit=unit,
                min_duration=min_duration,
                min_runs=min_runs,
                guardrails=guardrails,
                author=author,
                message=message,
                controller=ctl,
            )
        finally:
            rs.close()
    ctl = controller
    # every argument checked, and no canary or rollout active, before anything is published
    refuse_during_canary(client.store.head(), "canary publish")
    check = Rollout.start(
        "check",
        AGENT,
        "rev-2",
        "rev-1",
        stages,
        unit=unit,
        min_duration=_duration(min_duration),
        min_runs=min_runs,
        guardrails=guardrails,
        at=0.0,
        actor=author,
    )
    if check.in_shadow:
        raise RolloutError(
            "a config canary has no shadow stage (shadow runs compare agent versions): "
            "start its stages at a share, e.g. 1,10,100"
        )
    for other in ctl.rollouts():
        if other.active:
            raise RolloutError(
                f"rollout {other.name!r} is active; a config canary starts when no rollout "
                "assigns runs (finish or abort it first)"
            )
    result = client.publish_canary(source, author=author, message=message)
    assert result.parent_rev is not None
    try:
        r = ctl.start(
            AGENT,
            rev_label(result.rev),
            rev_label(result.parent_rev),
            stages,
            name=canary_name(result.rev),
            unit=unit,
            min_duration=min_duration,
            min_runs=min_runs,
            guardrails=guardrails,
            actor=author,
            kind=CONFIG,
        )
    except Exception:
        # a canary head without its rollout serves its baseline everywhere but blocks
        # every publish: end it before reporting
        try:
            _publish_end(client.store, result.rev, result.parent_rev, False, author, client.clock())
        except Exception:
            log.exception("flagmw: rolling back canary rev %s failed", result.rev)
        raise
    client.refresh()
    return CanaryStart(result, r)


def _is_canary_head(head: SnapshotInfo | None, rev: int) -> bool:
    return head is not None and head.rev == rev and head.action == CANARY_ACTION


def _publish_end(
    flags: Store, cand: int, base: int, completed: bool, actor: str, at: float, reason: str = ""
) -> SnapshotInfo:
    """Publish the plain rev that ends canary ``cand``: its own document (completed) or
    its baseline's as a rollback, on top of ``cand`` (a conflict when the head moved)."""
    record = flags.get_snapshot(cand if completed else base)
    why = f": {reason}" if reason else ""
    message = (
        f"canary {canary_name(cand)} completed: rev {cand}'s content for everyone{why}"
        if completed
        else f"canary {canary_name(cand)} ended: back to rev {base}'s content{why}"
    )
    return flags.publish(
        record.document,
        record.registry,
        content_hash=record.info.content_hash,
        registry_fingerprint=record.info.registry_fingerprint,
        parent_rev=cand,
        author=actor,
        message=message[:2000],
        at=at,
        action="publish" if completed else "rollback",
        rollback_of=None if completed else base,
    )


def _flags(ctl: RolloutController) -> Store:
    if ctl.flags is None:
        raise RolloutError(
            "a config canary's rollout is operated with the flag store: "
            "RolloutController(rollout_store, flags=store)"
        )
    return ctl.flags


def before_transition(
    ctl: RolloutController, r: Rollout, new: Rollout, actor: str, reason: str
) -> None:
    """Called by the controller before it records a config rollout's transition from
    ``r`` to ``new``: an end publishes the rev that ends the canary first (raising, with
    nothing recorded, when that fails); any other transition needs the canary to be the
    head still.

    Raises:
        RolloutError: the head moved on (``flagmw rollout tick`` records how it ended),
            or no flag store.
        ConflictError, StoreUnavailableError: the ending publish failed.
    """
    flags = _flags(ctl)
    cand, base = config_revs(r)
    head = flags.head()
    if _is_canary_head(head, cand):
        if not new.active:
            completed = new.status == "completed"
            _publish_end(flags, cand, base, completed, actor, ctl.clock(), reason)
        return
    moved = "no rev" if head is None else f"rev {head.rev}"
    if new.active or new.status == "completed":
        ended_as_completed = _ended_completed(flags, cand, head)
        if new.active or not ended_as_completed:
            raise RolloutError(
                f"canary rev {cand} is not the head any more (the head is {moved}); "
                f"`flagmw rollout tick {r.name}` records how it ended"
            )


def _ended_completed(flags: Store, cand: int, head: SnapshotInfo | None) -> bool:
    """True when the plain rev right after canary ``cand`` republished its content."""
    if head is None or head.rev <= cand:
        return False
    after = [i for i in flags.history(head.rev - cand + 1) if i.rev == cand + 1]
    if not after or after[0].action != "publish":
        return False
    return after[0].content_hash == flags.get_snapshot(cand, overlays=False).info.content_hash


def settle(ctl: RolloutController, r: Rollout, actor: str) -> TickResult | None:
    """Make a config rollout and the flag store's head agree again (a tick calls it
    first): an active rollout whose canary is no longer the head is recorded as ended
    the way the head says; an ended rollout whose canary is still the head gets its
    ending publish. None when they agree; an active canary waits when the controller
    has no flag store (it could not end it)."""
    from flagmw.rollout.controller import TickResult

    if ctl.flags is None:
        if not r.active:
            return None
        why = "a config canary is judged by a controller with the flag store (flags=store)"
        return TickResult(r.name, "wait", why, r.share)
    flags = ctl.flags
    cand, base = config_revs(r)
    head = flags.head()
    canary_head = _is_canary_head(head, cand)
    if r.active and not canary_head:
        done = _ended_completed(flags, cand, head) and r.last_stage and r.status == "running"
        why = f"the head moved on to rev {head.rev if head else '-'}"
        if done:
            new = ctl._transition(r, r.advance(ctl.clock(), actor, why), "complete", actor, why)
            return TickResult(r.name, "complete", why, new.share)
        new = ctl._transition(r, r.rollback(ctl.clock(), actor, why), "rollback", actor, why)
        return TickResult(r.name, "rollback", why, new.share)
    if not r.active and canary_head:
        info = _publish_end(flags, cand, base, r.status == "completed", actor, ctl.clock())
        why = f"published rev {info.rev} to end canary rev {cand} ({r.status})"
        return TickResult(r.name, "settle", why, r.share)
    return None
