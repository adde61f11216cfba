"""Where agent versions, rollouts, run outcomes, feedback and the rollout audit log live.

:class:`RolloutStore` sits next to a flag :class:`~flagmw.stores.base.Store` and uses
the same database (the SQLite file, the PostgreSQL schema, the Redis key prefix, or the
memory store's process), with its own tables or keys, so the flag store protocol is
unchanged. :func:`open_rollout_store` picks the backend for a store
(:mod:`flagmw.rollout.stores`: one module per backend).

Contract (``tests/test_rollout_store.py`` runs it on every backend):

* **versions are immutable**: publishing an existing ``agent@version`` with the same
  content hash returns the stored one; with other content it raises
  :class:`VersionConflictError`;
* **rollouts are compare-and-set**: :meth:`RolloutStore.save_rollout` takes the ``seq``
  the caller read; a stale writer gets :class:`RolloutConflictError`, never a silent
  overwrite (two controllers ticking at once cannot both advance a stage);
* **outcomes and feedback are a bounded log**: appended with their time, read by time
  window, pruned by age (:meth:`RolloutStore.prune`);
* **the rollout audit log** is append-only: every start, advance, pause, rollback and
  version kill, with the numbers that decided it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from flagmw.errors import FlagmwError, NotFoundError
from flagmw.rollout.versions import AgentVersion
from flagmw.stores.base import Store

__all__ = [
    "RolloutConflictError",
    "RolloutStore",
    "VersionConflictError",
    "dumps",
    "open_rollout_store",
]

#: kinds of documents and logs
VERSIONS, ROLLOUTS, KILLS, EVALS = "version", "rollout", "kill", "eval"
OUTCOMES, FEEDBACK, AUDIT = "outcome", "feedback", "audit"


class VersionConflictError(FlagmwError):
    """A version of that name exists with other content (versions are immutable:
    publish it under a new version name)."""


class RolloutConflictError(FlagmwError):
    """The rollout changed since it was read (another controller or operator wrote
    it); read it again and retry."""


def dumps(doc: Any) -> str:
    """Compact, sorted JSON (the stored form of every document)."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class RolloutStore:
    """The rollout data of one store. Backends implement the seven primitives below
    (``_insert``, ``_cas``, ``_get``, ``_list``, ``_append``, ``_read_log``, ``_prune``);
    everything else is here, once.

    Attributes:
        name: the underlying store's name.
    """

    name = "rollout store"

    # -- primitives ---------------------------------------------------------------------

    def _insert(self, kind: str, id: str, doc: dict[str, Any]) -> dict[str, Any] | None:
        """Insert ``doc`` unless ``(kind, id)`` exists; returns the existing document
        (nothing written) or None (written)."""
        raise NotImplementedError

    def _cas(self, kind: str, id: str, doc: dict[str, Any], expected: int) -> bool:
        """Write ``doc`` (whose ``seq`` is ``expected + 1``) when the stored one's
        ``seq`` is ``expected`` (0: none stored); False when it is not."""
        raise NotImplementedError

    def _get(self, kind: str, id: str) -> dict[str, Any] | None:
        raise NotImplementedError

    def _list(self, kind: str) -> list[dict[str, Any]]:
        raise NotImplementedError

    def _append(self, kind: str, at: float, docs: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    def _read_log(self, kind: str, since: float, limit: int) -> list[dict[str, Any]]:
        """Entries with time ≥ ``since``, oldest first, at most ``limit`` (the newest
        ``limit`` when there are more)."""
        raise NotImplementedError

    def _prune(self, kind: str, before: float) -> int:
        raise NotImplementedError

    def close(self) -> None:
        """Release connections (the flag store is not closed)."""

    # -- versions -----------------------------------------------------------------------

    def publish_version(self, version: AgentVersion, *, author: str, at: float) -> AgentVersion:
        """Store ``version`` stamped with ``author`` and ``at`` and audit it; an
        identical existing version is returned as stored (idempotent).

        Raises:
            VersionConflictError: the name exists with other content.
        """
        stamped = version.published(author, at)
        existing = self._insert(VERSIONS, version.ref, stamped.to_dict())
        if existing is not None:
            old = AgentVersion.from_dict(existing)
            if old.content_hash != version.content_hash:
                raise VersionConflictError(
                    f"{version.ref} is already published with other content (hash "
                    f"{old.content_hash[:19]}, yours {version.content_hash[:19]}); versions "
                    "are immutable: publish it as a new version"
                )
            return old
        self.append_audit(
            at,
            "version.publish",
            author,
            version.message,
            version.ref,
            {"content_hash": version.content_hash},
        )
        return stamped

    def get_version(self, agent: str, version: str) -> AgentVersion:
        """Raises :class:`~flagmw.errors.NotFoundError` when it was never published."""
        doc = self._get(VERSIONS, f"{agent}@{version}")
        if doc is None:
            known = [v.version for v in self.list_versions(agent)]
            hint = f" (published: {', '.join(known)})" if known else ""
            raise NotFoundError(f"no version {version!r} of agent {agent!r}{hint}")
        return AgentVersion.from_dict(doc)

    def list_versions(self, agent: str | None = None) -> list[AgentVersion]:
        """Every published version (of ``agent``), oldest first."""
        out = [AgentVersion.from_dict(d) for d in self._list(VERSIONS)]
        if agent is not None:
            out = [v for v in out if v.agent == agent]
        return sorted(out, key=lambda v: (v.agent, v.created_at, v.version))

    # -- rollouts -----------------------------------------------------------------------

    def get_rollout(self, name: str) -> dict[str, Any] | None:
        """The stored rollout document, or None."""
        return self._get(ROLLOUTS, name)

    def list_rollouts(self) -> list[dict[str, Any]]:
        return sorted(self._list(ROLLOUTS), key=lambda d: (d.get("created_at", 0), d["name"]))

    def save_rollout(self, doc: Mapping[str, Any], expected_seq: int) -> dict[str, Any]:
        """Compare-and-set: store ``doc`` as seq ``expected_seq + 1``.

        Raises:
            RolloutConflictError: the stored seq is not ``expected_seq``.
        """
        new = dict(doc)
        new["seq"] = expected_seq + 1
        if not self._cas(ROLLOUTS, new["name"], new, expected_seq):
            raise RolloutConflictError(
                f"rollout {new['name']!r} changed since it was read (expected seq "
                f"{expected_seq}); read it again"
            )
        return new

    # -- version kills --------------------------------------------------------------------

    def kills(self) -> list[dict[str, Any]]:
        """Every version kill document (``ref``, ``tenant`` or None, reason, actor, at,
        ``active``)."""
        return self._list(KILLS)

    def save_kill(self, doc: Mapping[str, Any]) -> None:
        """Store a kill (keyed by ``ref`` and ``tenant``); later writes replace it."""
        key = f"{doc['ref']}|{doc.get('tenant') or '*'}"
        for _ in range(16):
            old = self._get(KILLS, key)
            seq = int(old.get("seq", 0)) if old else 0
            if self._cas(KILLS, key, {**doc, "seq": seq + 1}, seq):
                return
        raise RolloutConflictError(f"kill of {doc['ref']} kept changing; retry")

    # -- offline evaluation results (quality gates) ----------------------------------------

    def save_eval(self, agent: str, version: str, metrics: Mapping[str, float], at: float) -> None:
        """Record offline metrics of a version (e.g. ``offline_quality``, ``safety``); a
        later record of the same metric replaces it."""
        key = f"{agent}@{version}"
        for _ in range(16):
            old = self._get(EVALS, key)
            seq = int(old.get("seq", 0)) if old else 0
            merged = {**(old or {}).get("metrics", {}), **{k: float(v) for k, v in metrics.items()}}
            doc = {"ref": key, "metrics": merged, "at": at, "seq": seq + 1}
            if self._cas(EVALS, key, doc, seq):
                return
        raise RolloutConflictError(f"evaluation results of {key} kept changing; retry")

    def evals(self, agent: str, version: str) -> dict[str, float]:
        """The offline metrics recorded for a version (empty when none)."""
        doc = self._get(EVALS, f"{agent}@{version}")
        return dict(doc.get("metrics", {})) if doc else {}

    # -- outcomes, feedback, audit --------------------------------------------------------

    def record_outcomes(self, outcomes: Iterable[Mapping[str, Any]]) -> None:
        """Append run outcomes (each with ``at``, seconds since the epoch)."""
        docs = [dict(o) for o in outcomes]
        if docs:
            self._append(OUTCOMES, 0.0, docs)

    def outcomes(self, since: float = 0.0, *, limit: int = 200_000) -> list[dict[str, Any]]:
        return self._read_log(OUTCOMES, since, limit)

    def record_feedback(self, run_id: str, score: float, comment: str, at: float) -> None:
        self._append(
            FEEDBACK, at, [{"run_id": run_id, "score": score, "comment": comment, "at": at}]
        )

    def feedback(self, since: float = 0.0, *, limit: int = 100_000) -> list[dict[str, Any]]:
        return self._read_log(FEEDBACK, since, limit)

    def append_audit(
        self,
        at: float,
        action: str,
        actor: str,
        reason: str,
        target: str,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Append one rollout audit entry."""
        entry = {
            "at": at,
            "action": action,
            "actor": actor,
            "reason": reason,
            "target": target,
            "details": dict(details or {}),
        }
        self._append(AUDIT, at, [entry])

    def audit(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest ``limit`` audit entries, oldest first."""
        return self._read_log(AUDIT, 0.0, limit)

    def prune(self, before: float) -> int:
        """Delete outcomes and feedback older than ``before``; returns how many."""
        return self._prune(OUTCOMES, before) + self._prune(FEEDBACK, before)


def open_rollout_store(store: Store) -> RolloutStore:
    """The rollout store of ``store`` (same database, own tables or keys), created on
    first use.

    Raises:
        FlagmwError: ``store`` is of a kind without rollout support.
        StoreUnavailableError: the database cannot be reached.
    """
    from flagmw.stores.memory import MemoryStore
    from flagmw.stores.sqlite import SQLiteStore

    if isinstance(store, MemoryStore):
        from flagmw.rollout.stores.memory import memory_rollout_store

        return memory_rollout_store(store)
    if isinstance(store, SQLiteStore):
        from flagmw.rollout.stores.sqlite import SQLiteRolloutStore

        return SQLiteRolloutStore(store.path, name=store.name)
    kind = type(store).__name__
    if kind == "PostgresStore":
        from flagmw.rollout.stores.postgres import PostgresRolloutStore

        return PostgresRolloutStore(store.conninfo, store.schema, name=store.name)  # type: ignore[attr-defined]
    if kind == "RedisStore":
        from flagmw.rollout.stores.redis import RedisRolloutStore

        return RedisRolloutStore(store.url, store.prefix, name=store.name)  # type: ignore[attr-defined]
    raise FlagmwError(f"rollouts are not supported on a {kind} store")
