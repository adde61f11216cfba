"""Agent versions as a resolution layer: the catalog of published versions a client
knows and the compiled ``version`` layer (DESIGN §6 "Progressive delivery").

A run assigned an agent version carries the assignment in three free attributes of its
:class:`~flagmw.core.context.EvaluationContext` (so it lands in the RunConfig, the pin
and the trace with the rest of the context):

* :data:`VERSION_ATTR` — ``"<agent>@<version>"``, e.g. ``"support-agent@v1.3.3"``;
* :data:`ROLLOUT_ATTR` — the rollout that assigned it (absent for a plain pin);
* :data:`STAGE_ATTR` — the rollout's stage, in percent of units (e.g. ``25``).

The layer looks the version up in a :class:`VersionCatalog` (version ref → validated
values). Versions are immutable, so adding one to a catalog never changes what an
existing ref resolves to: resolution stays a pure function of its inputs. A ref the
catalog does not hold offers nothing (the run gets the layers below).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from flagmw.core.candidate import Candidate, make_candidate
from flagmw.core.compiled_layers import CompiledLayer, Decider
from flagmw.core.context import EvaluationContext
from flagmw.core.provenance import Layer, Provenance
from flagmw.core.rules import Offer

if TYPE_CHECKING:
    from flagmw.core.override_index import OverrideIndex
    from flagmw.core.overrides import Override

__all__ = [
    "ROLLOUT_ATTR",
    "STAGE_ATTR",
    "VERSION_ATTR",
    "VersionCatalog",
    "VersionsLayer",
    "split_ref",
    "version_ref",
]

VERSION_ATTR = "flagmw.version"
ROLLOUT_ATTR = "flagmw.rollout"
STAGE_ATTR = "flagmw.stage"

_MEMO_LIMIT = 512


def version_ref(agent: str, version: str) -> str:
    """``"<agent>@<version>"``: how a context and the catalog name a version."""
    return f"{agent}@{version}"


def split_ref(ref: str) -> tuple[str, str]:
    """Inverse of :func:`version_ref`.

    Raises:
        ValueError: ``ref`` has no ``@``.
    """
    agent, sep, version = ref.rpartition("@")
    if not sep or not agent or not version:
        raise ValueError(f"not a version ref (agent@version): {ref!r}")
    return agent, version


class VersionCatalog:
    """Version ref → its values (already validated against the registry), shared by
    every compiled snapshot of one client. Thread-safe; entries are only added.

    Candidates are built per (ref, rollout, stage) on first use and memoised (bounded),
    so resolving a versioned run costs a dict lookup.
    """

    def __init__(self) -> None:
        self._values: dict[str, Mapping[str, Any]] = {}
        self._hashes: dict[str, str] = {}
        self._memo: dict[tuple[str, Any, Any], dict[str, Candidate]] = {}
        self._lock = threading.Lock()
        #: every key some version sets: only those keys' plans ask the version layer
        self.keys: frozenset[str] = frozenset()
        # per-key plans built before a version set a new key must be rebuilt
        self._plan_caches: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()

    def watch(self, owner: Any, plans: dict[str, Any]) -> None:
        """Clear ``plans`` (a view's per-key plans) whenever a version adds a key; held
        as long as ``owner`` (the view) lives."""
        with self._lock:
            self._plan_caches[id(plans)] = owner
            owner._version_plans = plans

    def add(self, ref: str, values: Mapping[str, Any], content_hash: str = "") -> None:
        """Add a version (a no-op when ``ref`` is already held: versions are immutable)."""
        with self._lock:
            if ref in self._values:
                return
            self._values[ref] = dict(values)
            self._hashes[ref] = content_hash
            new_keys = set(values) - self.keys
            if new_keys:
                self.keys = self.keys | new_keys
                for owner in list(self._plan_caches.values()):
                    owner._version_plans.clear()

    def __contains__(self, ref: object) -> bool:
        return ref in self._values

    def __len__(self) -> int:
        return len(self._values)

    def values(self, ref: str) -> Mapping[str, Any] | None:
        """The values of ``ref``, or None."""
        return self._values.get(ref)

    def content_hash(self, ref: str) -> str | None:
        """The content hash ``ref`` was added with, or None."""
        return self._hashes.get(ref)

    def candidates(self, ref: str, rollout: Any, stage: Any) -> dict[str, Candidate] | None:
        """The candidates of ``ref`` with their provenance for (rollout, stage), or None
        when the catalog does not hold ``ref``."""
        memo_key = (ref, rollout, stage)
        cands = self._memo.get(memo_key)
        if cands is not None:
            return cands
        values = self._values.get(ref)
        if values is None:
            return None
        prov = version_provenance(ref, rollout, stage)
        cands = {k: make_candidate(k, v, prov) for k, v in values.items()}
        with self._lock:
            if len(self._memo) >= _MEMO_LIMIT:
                self._memo.clear()
            self._memo[memo_key] = cands
        return cands


def version_provenance(ref: str, rollout: Any, stage: Any) -> Provenance:
    """The provenance of a value a version gives: scope = the version, experiment = the
    rollout, variant = the stage in percent (as text)."""
    try:
        _, version = split_ref(ref)
    except ValueError:
        version = ref
    return Provenance(
        Layer.VERSION,
        None,
        version,
        experiment=None if rollout is None else str(rollout),
        variant=None if stage is None else _stage_text(stage),
    )


def _stage_text(stage: Any) -> str:
    if isinstance(stage, float) and stage.is_integer():
        stage = int(stage)
    return str(stage)


class VersionsLayer(CompiledLayer):
    """The ``version`` layer compiled for a view: the values of the version the context
    was assigned (:data:`VERSION_ATTR`), from ``catalog``. Truthy whenever a catalog is
    attached (a version may be added to it after the view was compiled)."""

    def __init__(self, catalog: VersionCatalog | None, view: Any = None) -> None:
        self.catalog = catalog
        self._decide: Decider | None = None
        if catalog is not None and view is not None:
            catalog.watch(view, view.plans)

    def __bool__(self) -> bool:
        return self.catalog is not None

    def select(self, ctx: EvaluationContext) -> dict[str, Candidate] | None:
        """The candidates of the context's version, or None."""
        attrs = ctx.attributes
        if not attrs or self.catalog is None:
            return None
        ref = attrs.get(VERSION_ATTR)
        if type(ref) is not str:
            return None
        return self.catalog.candidates(ref, attrs.get(ROLLOUT_ATTR), attrs.get(STAGE_ATTR))

    def apply(
        self,
        vals: dict[str, Candidate],
        ctx: EvaluationContext,
        at: float,
        overrides: OverrideIndex | None,
        variants: dict[str, str],
        ids: list[str],
    ) -> None:
        cands = self.select(ctx)
        if cands:
            vals.update(cands)

    def decider(self, key: str) -> Decider | None:
        # only keys some version sets: the catalog clears the view's plans when a new
        # version brings a new key, so the next plan asks this layer
        if self.catalog is None or key not in self.catalog.keys:
            return None
        if self._decide is None:
            self._decide = self._make_decider()
        return self._decide

    def _make_decider(self) -> Decider:
        select: Callable[[EvaluationContext], dict[str, Candidate] | None] = self.select

        def decide(k: str, ctx: EvaluationContext, at: float, ov: Any) -> Candidate | None:
            if not ctx.attributes:  # the common case: no version, no call
                return None
            cands = select(ctx)
            return None if cands is None else cands.get(k)

        return decide

    def offers(
        self, key: str, ctx: EvaluationContext, at: float, all_overrides: Sequence[Override]
    ) -> list[Offer]:
        cands = self.select(ctx)
        cand = None if cands is None else cands.get(key)
        if cand is None:
            return []
        return [Offer(cand.provenance, cand.value, True, "the run's agent version")]
