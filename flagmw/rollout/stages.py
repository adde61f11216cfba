"""The stage machine of a rollout and the sticky assignment of units (pure).

States::

    running(stage i) ──advance──▶ running(stage i+1) ──advance at the last stage──▶ completed
        │  ▲                                   │
      pause resume                       rollback / abort (any time, immediate)
        ▼  │                                   ▼
      paused                          rolled_back (share 0) · aborted (share 0)

The candidate's **share** is the current stage's percentage while running or paused,
100 once completed and 0 once rolled back or aborted. Shares only grow until a
rollback; rollback and abort take the share to 0 at once (the next assignment).

**Assignment** (:func:`assign_arm`) reuses flagmw's one bucketing hash
(:mod:`flagmw.core.bucketing`): a unit (tenant, user, thread or run) is in the candidate
when ``bucket(salt, unit) < share in basis points``. The salt is fixed for the life of
the rollout, so a unit admitted at 5 % is still admitted at 25 %: as the share grows,
units only join the candidate. A context without the unit gets the baseline.

**The shadow stage.** A rollout may begin with a stage of kind ``shadow``
(``"shadow,1,5,25,50,100"``, stored as a leading ``0`` in :attr:`Rollout.stages`): the
candidate's share is 0 (no user run gets it) while :attr:`Rollout.shadow_share` percent
of the baseline's units are also run on the candidate in the background by a
:class:`~flagmw.rollout.shadow.ShadowRunner` that follows the rollout. The controller
judges the shadow runs against the baseline, then advances to the first traffic stage
or rolls back. Shares still only grow: 0 → the first traffic stage → …
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from flagmw.core.bucketing import UNIT_ATTRIBUTES, bucket, percent_to_bps
from flagmw.core.context import EvaluationContext
from flagmw.errors import FlagmwError

__all__ = ["SHADOW", "Rollout", "RolloutError", "Status", "assign_arm", "parse_stages"]

Status = Literal["running", "paused", "completed", "rolled_back", "aborted"]
ACTIVE: frozenset[str] = frozenset({"running", "paused"})
UNITS = tuple(UNIT_ATTRIBUTES)
#: the stored share of a ``shadow`` stage (only ever the first stage)
SHADOW = 0


class RolloutError(FlagmwError):
    """A rollout operation that does not apply (e.g. advancing a rolled-back rollout)."""


def parse_stages(stages: Sequence[float | str] | str) -> tuple[float, ...]:
    """``"1,5,25,50,100"`` or a sequence → strictly increasing percentages in (0, 100],
    at most 0.01 % precision, ending at 100; optionally led by the word ``shadow``
    (``"shadow,1,5,25,50,100"``), returned as a leading :data:`SHADOW` (``0``).

    Raises:
        RolloutError: anything else (``shadow`` anywhere but first, a literal ``0``).
    """
    items = (
        [s.strip() for s in stages.split(",") if s.strip()]
        if isinstance(stages, str)
        else [s.strip() if isinstance(s, str) else s for s in stages]
    )
    shadow = bool(items) and items[0] == "shadow"
    if shadow:
        items = items[1:]
    try:
        values = [float(s) for s in items]
    except (TypeError, ValueError):
        raise RolloutError(
            f"stages must be numbers like 1,5,25,50,100, optionally led by shadow: {stages!r}"
        ) from None
    if not values or values[-1] != 100:
        raise RolloutError(f"stages must end at 100: {values}")
    for a, b in itertools.pairwise(values):
        if not a < b:
            raise RolloutError(f"stages must increase: {values}")
    if values[0] <= 0 or any(abs(v * 100 - round(v * 100)) > 1e-6 for v in values):
        raise RolloutError(f"stages must be in (0, 100] with at most 2 decimals: {values}")
    values = [round(v, 2) for v in values]
    out = tuple(int(v) if v.is_integer() else v for v in values)
    return (SHADOW, *out) if shadow else out


@dataclass(frozen=True)
class Rollout:
    """One rollout of a candidate version over a baseline version of an agent.

    Attributes:
        name: e.g. ``support-agent-1.3.3``.
        agent, candidate, baseline: the agent and its two versions.
        stages: the candidate's share per stage, percent.
        unit: ``tenant`` | ``user`` | ``thread`` | ``run``.
        salt: the bucketing salt (fixed for the rollout's life).
        min_duration: seconds a stage must last before it may advance.
        min_runs: candidate runs a stage needs before guardrails judge or it advances.
        guardrails: guardrail specs (:mod:`flagmw.rollout.guardrails`).
        shadow_share: with a shadow stage, the percent of the baseline's units whose
            runs are also run on the candidate during it (0 without one).
        shadow_agreement: with a shadow stage, the least same-answer rate (0–1) of the
            shadow comparisons it needs, or None (not judged).
        status: the state; stage: the current stage index.
        stage_started_at: when the current stage began (seconds since the epoch).
        created_at, created_by: who started it, when.
        reason: why it was last paused, rolled back or aborted.
        history: ``{"at", "event", "share", "actor", "reason"}`` per transition.
        seq: the stored revision (compare-and-set).
        kind: ``version`` (an agent version) or ``config`` (a config canary: candidate
            and baseline are snapshot revs ``rev-N``; :mod:`flagmw.rollout.canary`).
    """

    name: str
    agent: str
    candidate: str
    baseline: str
    stages: tuple[float, ...]
    unit: str = "tenant"
    salt: str = ""
    min_duration: float = 1800.0
    min_runs: int = 200
    guardrails: tuple[Mapping[str, Any], ...] = ()
    shadow_share: float = 0.0
    shadow_agreement: float | None = None
    status: Status = "running"
    stage: int = 0
    stage_started_at: float = 0.0
    created_at: float = 0.0
    created_by: str = ""
    reason: str = ""
    history: tuple[Mapping[str, Any], ...] = field(default=())
    seq: int = 0
    kind: str = "version"

    @classmethod
    def start(
        cls,
        name: str,
        agent: str,
        candidate: str,
        baseline: str,
        stages: Sequence[float] | str,
        *,
        unit: str = "tenant",
        min_duration: float = 1800.0,
        min_runs: int = 200,
        guardrails: Sequence[Mapping[str, Any]] = (),
        shadow_share: float = 10.0,
        shadow_agreement: float | None = None,
        at: float,
        actor: str,
    ) -> Rollout:
        """A new rollout at its first stage. ``shadow_share`` (percent, in (0, 100]) and
        ``shadow_agreement`` (a fraction, 0–1) apply only with a shadow stage.

        Raises:
            RolloutError: bad stages or unit, candidate equal to baseline, negative
                durations or sample sizes, a shadow share or agreement out of range.
        """
        if unit not in UNITS:
            raise RolloutError(f"unit must be one of {', '.join(UNITS)}: {unit!r}")
        if candidate == baseline:
            raise RolloutError("the candidate and the baseline are the same version")
        if min_duration < 0 or min_runs < 0:
            raise RolloutError("min duration and min runs must not be negative")
        st = parse_stages(stages)
        has_shadow = st[0] == SHADOW
        if has_shadow and not 0 < shadow_share <= 100:
            raise RolloutError(f"the shadow share must be in (0, 100] percent: {shadow_share}")
        if shadow_agreement is not None and not 0 <= shadow_agreement <= 1:
            raise RolloutError(f"the shadow agreement must be in [0, 1]: {shadow_agreement}")
        r = cls(
            name,
            agent,
            candidate,
            baseline,
            st,
            unit,
            salt=f"rollout:{name}",
            min_duration=float(min_duration),
            min_runs=int(min_runs),
            guardrails=tuple(dict(g) for g in guardrails),
            shadow_share=float(shadow_share) if has_shadow else 0.0,
            shadow_agreement=shadow_agreement if has_shadow else None,
            stage_started_at=at,
            created_at=at,
            created_by=actor,
        )
        return r._event("start", at, actor, "")

    # -- derived ---------------------------------------------------------------------------

    @property
    def share(self) -> float:
        """The candidate's share now, percent."""
        if self.status in ACTIVE:
            return self.stages[self.stage]
        return 100 if self.status == "completed" else 0

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def in_shadow(self) -> bool:
        """True while running or paused in the shadow stage."""
        return self.status in ACTIVE and self.stages[self.stage] == SHADOW

    @property
    def stage_label(self) -> str:
        """``"shadow"`` or ``"25 %"``: the current stage for humans."""
        return "shadow" if self.in_shadow else f"{self.share:g} %"

    @property
    def last_stage(self) -> bool:
        return self.stage == len(self.stages) - 1

    # -- transitions (each returns a new Rollout) ------------------------------------------

    def _event(self, event: str, at: float, actor: str, why: str, **changes: Any) -> Rollout:
        new = replace(self, **changes)
        entry = {"at": at, "event": event, "share": new.share, "actor": actor, "reason": why}
        return replace(new, history=(*self.history, entry))

    def _need(self, *states: str, op: str) -> None:
        if self.status not in states:
            raise RolloutError(f"cannot {op} rollout {self.name!r}: it is {self.status}")

    def advance(self, at: float, actor: str, reason: str = "") -> Rollout:
        """To the next stage (from the last stage: completed)."""
        self._need("running", op="advance")
        if self.last_stage:
            return self._event("complete", at, actor, reason, status="completed")
        return self._event("advance", at, actor, reason, stage=self.stage + 1, stage_started_at=at)

    def pause(self, at: float, actor: str, reason: str) -> Rollout:
        """Hold the current share; the controller will not advance it."""
        self._need("running", op="pause")
        return self._event("pause", at, actor, reason, status="paused", reason=reason)

    def resume(self, at: float, actor: str, reason: str = "") -> Rollout:
        """Back to running; the stage's clock and sample restart."""
        self._need("paused", op="resume")
        return self._event("resume", at, actor, reason, status="running", stage_started_at=at)

    def rollback(self, at: float, actor: str, reason: str) -> Rollout:
        """The candidate's share goes to 0 at once (a failed guardrail, an operator)."""
        self._need("running", "paused", op="roll back")
        return self._event("rollback", at, actor, reason, status="rolled_back", reason=reason)

    def abort(self, at: float, actor: str, reason: str) -> Rollout:
        """Stop the rollout; the baseline serves everyone."""
        self._need("running", "paused", op="abort")
        return self._event("abort", at, actor, reason, status="aborted", reason=reason)

    # -- stored form -----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["stages"] = list(self.stages)
        d["guardrails"] = [dict(g) for g in self.guardrails]
        d["history"] = [dict(h) for h in self.history]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Rollout:
        data = dict(d)
        data["stages"] = tuple(data["stages"])
        data["guardrails"] = tuple(data.get("guardrails") or ())
        data["history"] = tuple(data.get("history") or ())
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def unit_value(rollout: Rollout, ctx: EvaluationContext) -> str | None:
    """The context's value of the rollout's unit, or None."""
    value = getattr(ctx, UNIT_ATTRIBUTES[rollout.unit])
    return value if isinstance(value, str) else None


def assign_arm(rollout: Rollout, ctx: EvaluationContext) -> Literal["candidate", "baseline"]:
    """``"candidate"`` when the context's unit falls inside the candidate's share."""
    share = rollout.share
    if share <= 0:
        return "baseline"
    if share >= 100:
        return "candidate"
    unit = unit_value(rollout, ctx)
    if unit is None:
        return "baseline"
    return "candidate" if bucket(rollout.salt, unit) < percent_to_bps(share) else "baseline"
