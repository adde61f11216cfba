"""How a client serves a config canary (issue 12 §3): a head rev published with
``action="canary"`` is served only to the runs its rollout assigns it.

``flagmw publish flags.yaml --canary 1,10,100`` (:mod:`flagmw.rollout.canary`) publishes
rev N as the head with ``action="canary"`` and ``rollback_of=B``, the head it was
published over (the :class:`~flagmw.stores.base.SnapshotInfo` columns every store
already has). A client whose head is such a rev

* serves **B** as its default view — to every run, every ``is_enabled`` / ``value`` —
  so a worker without the rollout runtime (or whose runtime cannot read the rollout
  store) never serves the unvetted rev to anyone (fail safe);
* keeps N compiled beside it (:attr:`CanaryServing.canary_rev`) and serves N to a
  context whose ``flagmw.config_rev`` attribute is N: the rollout runtime
  (:func:`flagmw.rollout.runtime.attach`) sets it, with ``flagmw.rollout``,
  ``flagmw.stage`` and ``flagmw.arm``, for the units in the candidate's share.

The attribute is part of the run's RunConfig context, so it is pinned in the checkpoint
with the config: a resumed run keeps its rev. Hot keys of an in-flight run re-resolve
against its arm's rev while the canary is the head, and against the new head once it
ended (N's content after completion, B's after a rollback).

A plain publish, rollback or overlay publish while the head is a canary is refused
(:class:`CanaryInProgressError`): finish or abort the canary first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from flagmw.core.compiled import CompiledSnapshot, View
from flagmw.core.context import EvaluationContext
from flagmw.core.override_index import OverrideIndex
from flagmw.errors import ConflictError, FlagmwError
from flagmw.stores.base import SnapshotInfo, Store

if TYPE_CHECKING:  # pragma: no cover
    import os

    from flagmw.client.results import PublishResult
    from flagmw.core.snapshot import Snapshot
    from flagmw.errors import Problem

__all__ = [
    "CANARY_ACTION",
    "CONFIG_REV_ATTR",
    "CanaryInProgressError",
    "CanaryPublishing",
    "CanaryServing",
    "canary_name",
    "refuse_during_canary",
]

#: the ``SnapshotInfo.action`` of a canary rev (its ``rollback_of`` is the baseline rev)
CANARY_ACTION = "canary"
#: the context attribute naming the snapshot rev a run was assigned (an int)
CONFIG_REV_ATTR = "flagmw.config_rev"


def canary_name(rev: int) -> str:
    """The rollout of canary rev ``rev``: ``config-rev-<rev>``."""
    return f"config-rev-{rev}"


class CanaryInProgressError(ConflictError):
    """A plain publish, rollback or overlay publish while the head is a canary rev.

    Attributes:
        expected_parent, actual_head: as :class:`~flagmw.errors.ConflictError` (the head
            is the canary rev).
        baseline: the canary's baseline rev.
    """

    def __init__(self, operation: str, head: SnapshotInfo) -> None:
        self.expected_parent = head.rev
        self.actual_head = head.rev
        self.baseline = head.rollback_of
        name = canary_name(head.rev)
        FlagmwError.__init__(
            self,
            f"{operation} refused: head rev {head.rev} is a config canary over rev "
            f"{head.rollback_of} (rollout {name}), served to part of the traffic; a plain "
            f"{operation} now would promote or lose it. Finish it (`flagmw rollout advance "
            f"{name}`, or let `flagmw rollout tick` advance it) or abort it (`flagmw rollout "
            f"abort {name} --reason …`, which serves rev {head.rollback_of}'s content to "
            "everyone again), then publish",
        )


def refuse_during_canary(head: SnapshotInfo | None, operation: str) -> None:
    """Raise :class:`CanaryInProgressError` when ``head`` is a canary rev."""
    if head is not None and head.action == CANARY_ACTION:
        raise CanaryInProgressError(operation, head)


class CanaryServing:
    """The canary half of the evaluation cache (a mixin of
    :class:`~flagmw.client.cache.EvaluationCache`)."""

    store: Store
    environment: str
    _compiled: CompiledSnapshot
    _served_info: SnapshotInfo | None
    _rejected: tuple[int | None, tuple[Problem, ...]]
    _overrides: OverrideIndex
    _view: View
    #: the canary rev N, compiled (None: the head is not a canary, or N did not load)
    _canary: CompiledSnapshot | None = None
    _canary_envs: dict[str, View]
    #: the rev the default view should serve: the head's, or a canary head's baseline
    _want_rev: int | None = None

    if TYPE_CHECKING:  # pragma: no cover - provided by EvaluationCache

        def _load(self, head: SnapshotInfo) -> CompiledSnapshot | None: ...
        def _fail(self, exc: Exception) -> None: ...
        def _scope(self, env: str | None) -> tuple[View, OverrideIndex]: ...

    @property
    def canary_rev(self) -> int | None:
        """The head's canary rev, when the head is one and it is loaded: served to a
        context whose ``flagmw.config_rev`` is this rev; None otherwise."""
        canary = self._canary
        return None if canary is None else canary.rev

    def _default_info(self, head: SnapshotInfo | None) -> tuple[SnapshotInfo | None, bool]:
        """The rev to serve by default for ``head``: the head, or a canary head's
        baseline (read from the store unless it is served already); and whether reading
        it failed (then nothing new is installed and the head is read again later)."""
        if head is None or head.action != CANARY_ACTION or head.rollback_of is None:
            self._want_rev = None if head is None else head.rev
            return head, False
        base = head.rollback_of
        self._want_rev = base
        served = self._served_info
        if served is not None and served.rev == base:
            return served, False
        try:
            return self.store.get_snapshot(base, overlays=False).info, False
        except FlagmwError as exc:
            self._fail(exc)
            return None, True

    def _install_canary(self, head: SnapshotInfo | None) -> bool:
        """Compile a canary head beside its baseline (or drop the last one); True when
        what is served changed."""
        old = self._canary
        if head is None or head.action != CANARY_ACTION or self._compiled.rev != head.rollback_of:
            self._canary = None
        elif old is None or old.rev != head.rev:
            # built from the served baseline (only the overlays the canary wrote are new)
            self._canary = None if head.rev == self._rejected[0] else self._load(head)
        if self._canary is not old:
            self._canary_envs = {}
            return True
        return False

    def _scope_of(self, ctx: EvaluationContext) -> tuple[View, OverrideIndex]:
        """:meth:`_scope` for ``ctx``, or the canary's view when ``ctx`` was assigned
        the canary rev (its ``flagmw.config_rev`` attribute)."""
        canary = self._canary
        attrs = ctx.attributes
        if canary is None or not attrs or attrs.get(CONFIG_REV_ATTR) != canary.rev:
            return self._scope(ctx.environment)
        env = ctx.environment
        if env is None or env == self.environment:
            env = self.environment
            view = self._canary_envs.get(env)
            if view is None:
                view = self._canary_envs[env] = canary.view(env)
            return view, self._overrides
        pair = self._scope(env)  # the other environment's override index
        view = self._canary_envs.get(env)
        if view is None:
            view = self._canary_envs[env] = canary.view(env)
        return view, pair[1]


class CanaryPublishing:
    """:meth:`publish_canary`: the low-level publish of a canary rev (a mixin of
    :class:`~flagmw.client.FlagClient`; :func:`flagmw.rollout.canary.start_canary`
    publishes with it and starts the rollout)."""

    store: Store
    clock: Callable[[], float]

    if TYPE_CHECKING:  # pragma: no cover - provided by AdminOperations

        def _validated(
            self, source: str | os.PathLike[str] | Mapping[str, Any]
        ) -> tuple[Snapshot, tuple[Problem, ...]]: ...
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
        ) -> PublishResult: ...

    def publish_canary(
        self,
        source: str | os.PathLike[str] | Mapping[str, Any],
        *,
        author: str,
        message: str,
        parent_rev: int | None = None,
    ) -> PublishResult:
        """Validate ``source`` and publish it as a canary rev over the head (the
        baseline). On its own this serves the new rev to nobody: a rollout named
        :func:`canary_name` assigns it (use :func:`flagmw.rollout.canary.start_canary`,
        which does both).

        Args:
            source: a YAML/JSON file or a mapping, as :meth:`FlagClient.publish`.
            author, message: who and why (mandatory).
            parent_rev: the baseline rev expected to be the head (default: the head).

        Raises:
            ValidationError: the document is invalid (nothing published).
            CanaryInProgressError: the head is a canary already.
            ConflictError: ``parent_rev`` is not the head.
            FlagmwError: nothing is published yet (a canary needs a baseline), or the
                document equals the head's (nothing to roll out).
        """
        from flagmw.client.arguments import check_required_text

        check_required_text("publish", "author", author)
        check_required_text("publish", "message", message)
        snapshot, warnings = self._validated(source)
        head = self.store.head()
        if head is None:
            raise FlagmwError(
                "a config canary needs a baseline: nothing is published yet (publish the "
                "first rev without --canary)"
            )
        refuse_during_canary(head, "canary publish")
        base = head.rev if parent_rev is None else parent_rev
        result = self._publish(
            snapshot,
            author=author,
            message=message,
            parent_rev=base,
            warnings=warnings,
            action=CANARY_ACTION,
            rollback_of=base,
        )
        if not result.published:
            raise FlagmwError(
                f"the document equals head rev {result.rev}: nothing to roll out as a canary"
            )
        return result
