"""The rollout controller: start, advance, pause, resume, abort, roll back, kill versions,
and :meth:`RolloutController.tick` — the loop a cron job, ``flagmw rollout tick``, or a
worker runs.

A tick, for each running rollout: aggregate the current stage's finished runs
(``completed`` and ``failed`` outcomes) per arm
(:mod:`.aggregate`), judge every guardrail (:mod:`.guardrails`) and the traffic split
(:mod:`.srm`), then

1. any guardrail **fails** → roll back at once (the candidate's share goes to 0 at the
   next assignment; in-flight runs finish on their pinned version unless the version is
   killed), the audit entry carrying the numbers;
2. else a sample-ratio mismatch → pause;
3. else every guardrail passes, the stage lasted ``min_duration`` and has ``min_runs``
   candidate runs → advance (from the last stage: complete);
4. else wait.

In a **shadow stage** (:data:`~flagmw.rollout.stages.SHADOW`) the candidate's arm is
the shadow runs (``arm: shadow`` outcomes of this rollout, recorded by a
:class:`~flagmw.rollout.shadow.ShadowRunner` following it), judged against the baseline
runs of the same window by the same guardrails and ``min_runs``; with
``shadow_agreement`` also the same-answer rate of the shadow comparisons. There is no
traffic split to test. It advances to the first traffic stage or rolls back.

Every transition is a compare-and-set on the stored rollout, so two controllers ticking
at once cannot both act; the loser's tick reports a conflict and changes nothing.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from flagmw.core.overrides import parse_duration
from flagmw.core.versions import version_ref
from flagmw.errors import ConflictError, NotFoundError
from flagmw.rollout.aggregate import Stats, aggregate
from flagmw.rollout.guardrails import DEFAULT_GUARDRAILS, Verdict, evaluate
from flagmw.rollout.shadow_judge import agreement_verdict
from flagmw.rollout.srm import SrmResult, srm_check
from flagmw.rollout.stages import Rollout, RolloutError
from flagmw.rollout.store import RolloutConflictError, RolloutStore
from flagmw.stores.base import Store

__all__ = ["Evaluation", "RolloutController", "TickResult"]

#: the outcomes guardrails judge: a run that finished, well or not (an interrupted run
#: has not finished yet; a drained or cancelled one was stopped from outside); the
#: traffic split counts every run
JUDGED = frozenset({"completed", "failed"})

_UNIT_FIELD = {"tenant": "tenant", "user": "user", "thread": "thread_id", "run": "run_id"}


def _duration(value: str | float) -> float:
    """Seconds from ``30m`` / ``1h30m`` / a number; 0 allowed (no minimum)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and value.strip() in ("0", "0s", "0m"):
        seconds = 0.0
    else:
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            raise RolloutError(f"min duration: {exc}") from None
    if not seconds >= 0 or seconds == float("inf"):
        raise RolloutError(f"min duration must be a finite, non-negative duration: {value!r}")
    return seconds


@dataclass(frozen=True)
class Evaluation:
    """A rollout's current stage judged: the arms' stats, each guardrail's verdict, the
    SRM result, and whether the stage's duration and sample are met."""

    rollout: Rollout
    candidate: Stats
    baseline: Stats
    verdicts: tuple[Verdict, ...]
    srm: SrmResult
    duration_met: bool
    runs_met: bool

    @property
    def failed(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.status == "fail"]

    @property
    def all_pass(self) -> bool:
        return all(v.status == "pass" for v in self.verdicts)


@dataclass(frozen=True)
class TickResult:
    """What one tick did to one rollout: ``action`` is ``advance``, ``complete``,
    ``rollback``, ``pause``, ``wait`` or ``conflict``; ``reason`` says why."""

    rollout: str
    action: str
    reason: str
    share: float


class RolloutController:
    """Operates the rollouts of one rollout store.

    Args:
        store: the rollout store.
        clock: seconds since the epoch.
        srm_min_units: units seen in a stage before the split is tested.
        retention: seconds of outcomes kept (older ones are pruned at each tick).
        gate: optional ``(rollout, version) -> list of failure messages`` (quality
            gates, issue 12 §5): a start or an advance is refused while it returns any.
        flags: the flag store, needed to operate config canaries (the ending publish,
            :mod:`flagmw.rollout.canary`).
    """

    def __init__(
        self,
        store: RolloutStore,
        *,
        clock: Callable[[], float] = time.time,
        srm_min_units: int = 100,
        retention: float = 7 * 86400.0,
        gate: Callable[[Rollout | None, str, str], list[str]] | None = None,
        flags: Store | None = None,
    ) -> None:
        self.store = store
        self.flags = flags
        self.clock = clock
        self.srm_min_units = srm_min_units
        self.retention = retention
        self.gate = gate

    # -- reading ---------------------------------------------------------------------------

    def get(self, name: str) -> Rollout:
        """Raises :class:`~flagmw.errors.NotFoundError` when there is no such rollout."""
        doc = self.store.get_rollout(name)
        if doc is None:
            names = [d["name"] for d in self.store.list_rollouts()]
            hint = f" (rollouts: {', '.join(names)})" if names else ""
            raise NotFoundError(f"no rollout {name!r}{hint}")
        return Rollout.from_dict(doc)

    def rollouts(self) -> list[Rollout]:
        """Every rollout, oldest first."""
        return [Rollout.from_dict(d) for d in self.store.list_rollouts()]

    def outcomes(self, r: Rollout, since: float | None = None) -> list[dict[str, Any]]:
        """The rollout's recorded outcomes (since ``since``, default its start)."""
        start = r.created_at if since is None else since
        return [o for o in self.store.outcomes(start) if o.get("rollout") == r.name]

    def evaluate(self, r: Rollout) -> Evaluation:
        """Judge the current stage (see the module docs)."""
        now = self.clock()
        since = self.outcomes(r, r.stage_started_at)
        window = [o for o in since if o.get("stage") == r.share]
        cand = [o for o in window if o.get("arm") == ("shadow" if r.in_shadow else "candidate")]
        base = [o for o in window if o.get("arm") == "baseline"]
        cs = aggregate(o for o in cand if o.get("outcome") in JUDGED)
        bs = aggregate(o for o in base if o.get("outcome") in JUDGED)
        if bs.runs < r.min_runs:  # at 100 % (or early): the baseline of the whole rollout
            bs = aggregate(
                o
                for o in self.outcomes(r)
                if o.get("arm") == "baseline" and o.get("outcome") in JUDGED
            )
        rails = r.guardrails or DEFAULT_GUARDRAILS
        verdicts = tuple(evaluate(g, cs, bs, r.min_runs) for g in rails)
        if r.in_shadow and r.shadow_agreement is not None:
            verdicts += (agreement_verdict(since, r.shadow_agreement, r.min_runs),)
        field = _UNIT_FIELD[r.unit]
        traffic = [o for o in window if o.get("arm") == "candidate"]  # never the shadows
        cu = {o.get(field) for o in traffic if o.get(field) is not None}
        bu = {o.get(field) for o in base if o.get(field) is not None}
        srm = srm_check(len(cu), len(bu), r.share / 100.0)
        if len(cu) + len(bu) < self.srm_min_units:
            srm = SrmResult(srm.candidate, srm.baseline, srm.expected, srm.chi2, srm.p_value, False)
        return Evaluation(
            r,
            cs,
            bs,
            verdicts,
            srm,
            now - r.stage_started_at >= r.min_duration,
            cs.runs >= r.min_runs,
        )

    # -- operations ------------------------------------------------------------------------

    def start(
        self,
        agent: str,
        candidate: str,
        baseline: str,
        stages: Sequence[float] | str = (1, 5, 25, 50, 100),
        *,
        name: str | None = None,
        unit: str = "tenant",
        min_duration: str | float = "30m",
        min_runs: int = 200,
        guardrails: Sequence[Mapping[str, Any]] = (),
        shadow_share: float = 10.0,
        shadow_agreement: float | None = None,
        actor: str,
        kind: str = "version",
    ) -> Rollout:
        """Start a rollout of ``candidate`` over ``baseline`` (both published; a
        ``kind="config"`` rollout is started by :func:`flagmw.rollout.canary.start_canary`).
        ``stages`` may begin with ``shadow`` (``"shadow,1,5,25,50,100"``): then
        ``shadow_share`` percent of the baseline's units are shadowed on the candidate
        first, and ``shadow_agreement`` (0–1, optional) is the least same-answer rate
        the shadow stage needs.

        Raises:
            NotFoundError: a version was never published.
            RolloutError: the agent has an active rollout (or a config canary is active),
                the name is taken, bad stages, or a quality gate fails.
        """
        if kind == "version":
            self.store.get_version(agent, candidate)
            self.store.get_version(agent, baseline)
        name = name or f"{agent}-{candidate.removeprefix('v')}"
        for other in self.rollouts():
            config = "config" in (kind, other.kind)  # one rollout assigns a run
            if (other.agent == agent or config) and other.active:
                raise RolloutError(
                    f"rollout {other.name!r} is active and a config canary shares runs with "
                    "no other rollout; abort or finish it first"
                    if config
                    else f"agent {agent!r} already has an active rollout {other.name!r}; "
                    "abort or finish it first"
                )
        if self.store.get_rollout(name) is not None:
            raise RolloutError(f"a rollout named {name!r} exists; choose another --name")
        self._gates(None, agent, candidate)
        now = self.clock()
        r = Rollout.start(
            name,
            agent,
            candidate,
            baseline,
            stages,
            unit=unit,
            min_duration=_duration(min_duration),
            min_runs=min_runs,
            guardrails=guardrails,
            shadow_share=shadow_share,
            shadow_agreement=shadow_agreement,
            at=now,
            actor=actor,
        )
        if kind != "version":
            r = replace(r, kind=kind)
        stored = self.store.save_rollout(r.to_dict(), 0)
        shadowing = f", shadowing {r.shadow_share:g} % first" if r.in_shadow else ""
        self.store.append_audit(
            now,
            "rollout.start",
            actor,
            f"{candidate} over {baseline}, stages {','.join(f'{s:g}' for s in r.stages)} %"
            + shadowing,
            name,
            {"share": r.share, "unit": unit, "shadow_share": r.shadow_share},
        )
        return Rollout.from_dict(stored)

    def _gates(self, r: Rollout | None, agent: str, version: str) -> None:
        if self.gate is None or (r is not None and r.kind == "config"):
            return
        failures = self.gate(r, agent, version)
        if failures:
            raise RolloutError(f"quality gates fail for {agent} {version}: " + "; ".join(failures))

    def _transition(
        self,
        r: Rollout,
        new: Rollout,
        action: str,
        actor: str,
        reason: str,
        details: Mapping[str, Any] | None = None,
    ) -> Rollout:
        if r.kind == "config":  # an end publishes the plain rev first (flagmw.rollout.canary)
            from flagmw.rollout.canary import before_transition

            before_transition(self, r, new, actor, reason)
        stored = self.store.save_rollout(new.to_dict(), r.seq)
        self.store.append_audit(
            self.clock(),
            f"rollout.{action}",
            actor,
            reason,
            r.name,
            {"share_before": r.share, "share_after": new.share, **(details or {})},
        )
        return Rollout.from_dict(stored)

    def advance(self, name: str, *, actor: str, reason: str = "advanced by hand") -> Rollout:
        r = self.get(name)
        self._gates(r, r.agent, r.candidate)
        new = r.advance(self.clock(), actor, reason)
        return self._transition(
            r, new, "complete" if new.status == "completed" else "advance", actor, reason
        )

    def pause(self, name: str, *, actor: str, reason: str) -> Rollout:
        r = self.get(name)
        return self._transition(r, r.pause(self.clock(), actor, reason), "pause", actor, reason)

    def resume(self, name: str, *, actor: str, reason: str = "resumed") -> Rollout:
        r = self.get(name)
        return self._transition(r, r.resume(self.clock(), actor, reason), "resume", actor, reason)

    def abort(self, name: str, *, actor: str, reason: str) -> Rollout:
        r = self.get(name)
        return self._transition(r, r.abort(self.clock(), actor, reason), "abort", actor, reason)

    def rollback(
        self, name: str, *, actor: str, reason: str, details: Mapping[str, Any] | None = None
    ) -> Rollout:
        r = self.get(name)
        new = r.rollback(self.clock(), actor, reason)
        return self._transition(r, new, "rollback", actor, reason, details)

    def kill_version(
        self, agent: str, version: str, *, reason: str, actor: str, tenant: str | None = None
    ) -> list[str]:
        """Kill a version (globally or for one tenant): no new run is assigned it, and a
        run pinned to it is assigned again when it resumes. A global kill of an active
        rollout's candidate also rolls that rollout back. Returns the rollouts rolled
        back.

        Raises:
            NotFoundError: the version was never published.
            RolloutError: an empty reason.
        """
        if not reason.strip():
            raise RolloutError("a version kill needs a --reason")
        self.store.get_version(agent, version)
        ref = version_ref(agent, version)
        now = self.clock()
        self.store.save_kill(
            {
                "ref": ref,
                "tenant": tenant,
                "active": True,
                "reason": reason,
                "actor": actor,
                "at": now,
            }
        )
        scope = f"tenant:{tenant}" if tenant else "global"
        self.store.append_audit(now, "version.kill", actor, reason, ref, {"scope": scope})
        rolled: list[str] = []
        if tenant is None:
            for r in self.rollouts():
                if r.agent == agent and r.candidate == version and r.active:
                    self.rollback(r.name, actor=actor, reason=f"version {version} killed: {reason}")
                    rolled.append(r.name)
        return rolled

    def unkill_version(
        self, agent: str, version: str, *, reason: str, actor: str, tenant: str | None = None
    ) -> None:
        """End a version kill."""
        ref = version_ref(agent, version)
        now = self.clock()
        self.store.save_kill(
            {
                "ref": ref,
                "tenant": tenant,
                "active": False,
                "reason": reason,
                "actor": actor,
                "at": now,
            }
        )
        self.store.append_audit(now, "version.unkill", actor, reason, ref, {})

    # -- the controller loop -----------------------------------------------------------------

    def tick(self, name: str | None = None, *, actor: str = "controller") -> list[TickResult]:
        """Judge and act on every running rollout (or ``name``); see the module docs."""
        now = self.clock()
        # retention is housekeeping: it never blocks a rollback
        with contextlib.suppress(Exception):
            self.store.prune(now - self.retention)
        rollouts = [self.get(name)] if name is not None else self.rollouts()
        out: list[TickResult] = []
        for r in rollouts:
            try:
                if r.kind == "config":  # the flag store's head and the record agree
                    from flagmw.rollout.canary import settle

                    settled = settle(self, r, actor)
                    if settled is not None:
                        out.append(settled)
                        continue
                if r.status != "running":
                    continue
                out.append(self._tick_one(r, actor))
            except (RolloutConflictError, ConflictError) as exc:  # another writer acted
                out.append(TickResult(r.name, "conflict", str(exc), r.share))
        return out

    def _tick_one(self, r: Rollout, actor: str) -> TickResult:
        ev = self.evaluate(r)
        failed = ev.failed
        if failed:
            reason = "; ".join(v.message for v in failed)
            details = {
                "stage": r.stage_label if r.in_shadow else r.share,
                "candidate": ev.candidate.to_dict(),
                "baseline": ev.baseline.to_dict(),
                "failed": [v.guardrail for v in failed],
            }
            new = self._transition(
                r, r.rollback(self.clock(), actor, reason), "rollback", actor, reason, details
            )
            return TickResult(r.name, "rollback", reason, new.share)
        if ev.srm.mismatch:
            reason = ev.srm.describe()
            new = self._transition(
                r,
                r.pause(self.clock(), actor, reason),
                "pause",
                actor,
                reason,
                {"chi2": ev.srm.chi2, "p_value": ev.srm.p_value},
            )
            return TickResult(r.name, "pause", reason, new.share)
        if ev.all_pass and ev.duration_met and ev.runs_met:
            if self.gate is not None and r.kind != "config" and self.gate(r, r.agent, r.candidate):
                return TickResult(r.name, "wait", "a quality gate fails", r.share)
            held = "shadow runs hold" if r.in_shadow else "guardrails hold"
            reason = f"{held}: " + "; ".join(v.message for v in ev.verdicts)
            new_r = r.advance(self.clock(), actor, reason)
            action = "complete" if new_r.status == "completed" else "advance"
            details = {
                "stage": r.stage_label if r.in_shadow else r.share,
                "candidate": ev.candidate.to_dict(),
                "baseline": ev.baseline.to_dict(),
            }
            new = self._transition(r, new_r, action, actor, reason, details)
            return TickResult(r.name, action, reason, new.share)
        waiting = [v.message for v in ev.verdicts if v.status == "insufficient"]
        if not ev.duration_met:
            left = r.min_duration - (self.clock() - r.stage_started_at)
            waiting.append(f"{left:.0f} s of the stage's minimum duration left")
        return TickResult(r.name, "wait", "; ".join(waiting) or "waiting", r.share)
