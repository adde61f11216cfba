"""The rollout runtime of a client: assigns each new run its agent version.

:func:`attach` installs :meth:`RolloutRuntime.assign` as the client's
``assign_version`` hook, so every ``client.resolve`` — a wrapped graph's run start, the
``create_agent`` middleware's pin — gets the version of the agent's rollout for its unit
(:func:`~flagmw.rollout.stages.assign_arm`) as context attributes, and the ``version``
layer serves that version's values. The rollouts, kills and versions are read from the
store by :meth:`RolloutRuntime.refresh` (a daemon thread every ``refresh_interval``
seconds), never on the run's path: assignment is a dict lookup and one hash.

Rules:

* a context that already carries a version (a resumed run re-resolved live) keeps it,
  unless that version is killed;
* a killed candidate gives the baseline; a killed baseline gives the candidate; both
  killed: no version (the layers below serve the run);
* a rolled-back or aborted rollout gives everyone the baseline (stage 0 %), a completed
  one the candidate (stage 100 %).

A config canary (:mod:`flagmw.rollout.canary`) is assigned the same way, when the client
serves a canary head (:attr:`FlagClient.canary_rev`): the unit's arm gives the context
``flagmw.config_rev`` (the canary rev or its baseline) with ``flagmw.rollout``,
``flagmw.stage`` and ``flagmw.arm``; the client serves the canary rev to the candidate
(:mod:`flagmw.client.canary`). A context that carries a rev already (pinned), or another
rollout's assignment, keeps it; a canary whose rollout this runtime has not read (yet)
is served to no one.

Assignment never raises: on any error the context is returned unchanged.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from flagmw.client.canary import CONFIG_REV_ATTR
from flagmw.client.client import FlagClient
from flagmw.core.context import EvaluationContext
from flagmw.core.versions import ROLLOUT_ATTR, STAGE_ATTR, VERSION_ATTR, version_ref
from flagmw.rollout.canary import CONFIG, config_revs
from flagmw.rollout.stages import Rollout, assign_arm
from flagmw.rollout.store import RolloutStore, open_rollout_store

__all__ = ["ARM_ATTR", "RolloutRuntime", "attach"]

log = logging.getLogger("flagmw")

#: the context attribute naming the run's arm: ``candidate`` or ``baseline``
ARM_ATTR = "flagmw.arm"
_VERSION_ATTRS = (VERSION_ATTR, ROLLOUT_ATTR, STAGE_ATTR, ARM_ATTR)


class RolloutRuntime:
    """Version assignment for one client (build with :func:`attach`).

    Attributes:
        store: the rollout store.
        errors: refresh and assignment errors swallowed.
    """

    def __init__(
        self,
        client: FlagClient,
        store: RolloutStore | None = None,
        *,
        refresh_interval: float = 5.0,
        background: bool = True,
    ) -> None:
        self.client = client
        self.store = store if store is not None else open_rollout_store(client.store)
        self.refresh_interval = refresh_interval
        self.errors = 0
        self._rollouts: dict[str, Rollout] = {}
        # config canaries: canary rev → (rollout, canary rev, baseline rev)
        self._configs: dict[int, tuple[Rollout, int, int]] = {}
        self._kills: frozenset[tuple[str, str | None]] = frozenset()
        self._closed = threading.Event()
        self.refresh()
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(target=self._loop, name="flagmw-rollouts", daemon=True)
            self._thread.start()

    # -- reading the store (off the run's path) --------------------------------------------

    def refresh(self) -> None:
        """Read rollouts, kills and the versions they name from the store now; on an
        error keep the last good state (and count it)."""
        try:
            latest: dict[str, Rollout] = {}
            configs: dict[int, tuple[Rollout, int, int]] = {}
            for doc in self.store.list_rollouts():
                r = Rollout.from_dict(doc)
                if r.kind == CONFIG:
                    cand, base = config_revs(r)
                    configs[cand] = (r, cand, base)
                    continue
                old = latest.get(r.agent)
                if old is None or (r.active, r.created_at) >= (old.active, old.created_at):
                    latest[r.agent] = r
            catalog = self.client.versions
            for r in latest.values():
                for version in (r.candidate, r.baseline):
                    ref = version_ref(r.agent, version)
                    if ref not in catalog:
                        v = self.store.get_version(r.agent, version)
                        catalog.add(ref, v.values, v.content_hash)
            kills = frozenset(
                (str(k["ref"]), k.get("tenant")) for k in self.store.kills() if k.get("active")
            )
        except Exception:
            self.errors += 1
            log.warning("flagmw: reading rollouts failed; keeping the last state", exc_info=True)
            return
        self._rollouts, self._kills, self._configs = latest, kills, configs

    def _loop(self) -> None:
        while not self._closed.wait(self.refresh_interval):
            self.refresh()

    def close(self) -> None:
        """Stop the refresher and detach from the client."""
        self._closed.set()
        if self.client.assign_version == self.assign:
            self.client.assign_version = None

    # -- the run's path ----------------------------------------------------------------------

    def killed(self, ref: str, tenant: str | None) -> bool:
        """True when version ``ref`` is killed globally or for ``tenant``."""
        kills = self._kills
        return bool(kills) and (
            (ref, None) in kills or (tenant is not None and (ref, tenant) in kills)
        )

    def rollout_of(self, agent: str | None) -> Rollout | None:
        """The rollout that assigns ``agent``'s runs, or None."""
        return None if agent is None else self._rollouts.get(agent)

    def assign(self, ctx: EvaluationContext) -> EvaluationContext:
        """``ctx`` with the run's version attributes (see the module docs)."""
        try:
            ctx = self._assign(ctx)
            return ctx if not self._configs else self._assign_config(ctx)
        except Exception:
            self.errors += 1
            log.warning("flagmw: version assignment failed; no version", exc_info=True)
            return ctx

    def _assign(self, ctx: EvaluationContext) -> EvaluationContext:
        attrs: Mapping[str, Any] = ctx.attributes or {}
        have = attrs.get(VERSION_ATTR)
        if isinstance(have, str):
            if not self.killed(have, ctx.tenant_id):
                return ctx  # pinned: a resumed run keeps its version
            attrs = {k: v for k, v in attrs.items() if k not in _VERSION_ATTRS}
            ctx = ctx._replace(attributes=MappingProxyType(dict(attrs)))
        r = self._rollouts.get(ctx.route) if ctx.route is not None else None
        if r is None:
            return ctx
        arm = assign_arm(r, ctx)
        order = ("candidate", "baseline") if arm == "candidate" else ("baseline", "candidate")
        for a in order:
            ref = version_ref(r.agent, r.candidate if a == "candidate" else r.baseline)
            if not self.killed(ref, ctx.tenant_id):
                new = dict(attrs)
                new[VERSION_ATTR] = ref
                new[ROLLOUT_ATTR] = r.name
                new[STAGE_ATTR] = r.share
                new[ARM_ATTR] = a
                return ctx._replace(attributes=MappingProxyType(new))
        return ctx

    def _assign_config(self, ctx: EvaluationContext) -> EvaluationContext:
        canary = self.client.canary_rev
        found = None if canary is None else self._configs.get(canary)
        if found is None:
            return ctx
        attrs: Mapping[str, Any] = ctx.attributes or {}
        if CONFIG_REV_ATTR in attrs or ROLLOUT_ATTR in attrs:
            return ctx  # pinned, or assigned by another rollout
        r, cand, base = found
        new = dict(attrs)
        if r.active:
            arm = assign_arm(r, ctx)
            new[CONFIG_REV_ATTR] = cand if arm == "candidate" else base
            new[ROLLOUT_ATTR] = r.name
            new[STAGE_ATTR] = r.share
            new[ARM_ATTR] = arm
        elif r.status == "completed":  # until the ending publish is read
            new[CONFIG_REV_ATTR] = cand
        else:
            return ctx
        return ctx._replace(attributes=MappingProxyType(new))

    def version_killed(self, ctx: EvaluationContext) -> bool:
        """True when the context's pinned version is killed (a resumed run then gets a
        version again instead of finishing on the killed one)."""
        ref = (ctx.attributes or {}).get(VERSION_ATTR)
        return isinstance(ref, str) and self.killed(ref, ctx.tenant_id)


def attach(
    client: FlagClient,
    store: RolloutStore | None = None,
    *,
    refresh_interval: float = 5.0,
    background: bool = True,
) -> RolloutRuntime:
    """Give ``client`` version assignment from the rollouts in its store.

    Raises:
        StoreUnavailableError: the rollout store cannot be opened.
    """
    rt = RolloutRuntime(client, store, refresh_interval=refresh_interval, background=background)
    client.assign_version = rt.assign
    client.version_killed = rt.version_killed
    return rt
