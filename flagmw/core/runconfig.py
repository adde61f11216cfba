"""RunConfig: the immutable result of resolution for one run, with provenance.

A RunConfig is what lands in the LangGraph checkpoint and on the trace. It is a
read-only :class:`collections.abc.Mapping` of flag key → value, serialises to JSON
primitives only (:meth:`RunConfig.to_json`) and comes back identical
(:meth:`RunConfig.from_json`), with its ``config_hash`` verified.

``config_hash`` is ``"sha256:" + hex(sha256(JCS({key: value, …})))`` where JCS is RFC
8785 canonical JSON (:mod:`flagmw.core.canonical`): anyone recomputes it from the
values alone, in any process or language (``docs/concepts.md`` has a worked example).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from flagmw.core.candidate import Candidate, copy_json, make_candidate
from flagmw.core.candidate_memo import CandidateMemo
from flagmw.core.config_hash import hash_candidates, legacy_hash
from flagmw.core.context import EvaluationContext
from flagmw.core.hot_change import HotChange
from flagmw.core.provenance import DEFAULT_PROVENANCE, Layer, Provenance
from flagmw.errors import IntegrityError, Problem, UnknownFlagError, ValidationError

if TYPE_CHECKING:  # pragma: no cover - pydantic is imported by get_as, on use
    import pydantic

__all__ = ["FORMAT", "RunConfig"]

#: The ``format`` tag of the JSON form.
FORMAT = "flagmw.runconfig/1"

M = TypeVar("M", bound="pydantic.BaseModel")


class _ProvenanceView(Mapping[str, Provenance]):
    __slots__ = ("_c",)

    def __init__(self, candidates: Mapping[str, Candidate]) -> None:
        self._c = candidates

    def __getitem__(self, key: str) -> Provenance:
        return self._c[key].provenance

    def __iter__(self) -> Iterator[str]:
        return iter(self._c)

    def __len__(self) -> int:
        return len(self._c)


_NO_VARIANTS: Mapping[str, str] = MappingProxyType({})


_new_fields = tuple.__new__


class _Fields(NamedTuple):
    """The non-value fields of a RunConfig (one tuple: built in one step)."""

    snapshot_rev: int | None
    snapshot_hash: str | None
    environment: str
    context: EvaluationContext
    resolved_at: float
    override_ids: tuple[str, ...]
    variants: Mapping[str, str]
    changes: tuple[HotChange, ...]


class RunConfig(Mapping[str, Any]):
    """The resolved configuration of one run: an immutable, read-only
    :class:`collections.abc.Mapping` of flag key → value, in sorted key order.

    Read values with ``rc[key]``, ``rc.get(key, default)``, ``rc.enabled(key)``,
    ``rc.get_as(key, Model)`` and ``rc.variant(experiment)``; ``keys()``, ``values()``,
    ``items()``, ``len(rc)``, ``key in rc`` and ``dict(rc)`` work as on any mapping.
    JSON values (lists, mappings) are returned as copies, so the pinned config cannot
    be mutated through them.

    Attributes:
        snapshot_rev: the snapshot rev resolved against (None: no snapshot published,
            defaults only).
        snapshot_hash: that snapshot's content hash.
        environment: the deployment environment.
        context: the evaluation context.
        resolved_at: seconds since the epoch (UTC) at which it was resolved.
        override_ids: the overrides that decided at least one value.
        variants: experiment → assigned variant, for every experiment that matched.
        changes: hot changes applied at step boundaries, oldest first.
        config_hash: ``"sha256:…"`` over the canonical JSON of the values.
    """

    # The fields live in one named tuple behind read-only properties: an immutable object
    # built with three attribute writes (a resolve builds one per run).
    __slots__ = ("_c", "_f", "_hash", "_memo")

    _c: Mapping[str, Candidate]
    _f: _Fields
    _hash: str | None
    _memo: dict[str, Any] | None

    def __init__(
        self,
        candidates: Mapping[str, Candidate],
        *,
        snapshot_rev: int | None,
        snapshot_hash: str | None,
        environment: str,
        context: EvaluationContext,
        resolved_at: float,
        override_ids: tuple[str, ...] = (),
        variants: Mapping[str, str] | None = None,
        changes: tuple[HotChange, ...] = (),
        config_hash: str | None = None,
    ) -> None:
        if not variants:
            variants = _NO_VARIANTS
        elif type(variants) is not MappingProxyType:
            variants = MappingProxyType(dict(variants))
        init = object.__setattr__  # __setattr__ refuses: a RunConfig is immutable
        init(self, "_c", candidates)
        init(
            self,
            "_f",
            _new_fields(  # _Fields(...) without its generated __new__ (one call less)
                _Fields,
                (
                    snapshot_rev,
                    snapshot_hash,
                    environment,
                    context,
                    resolved_at,
                    override_ids if type(override_ids) is tuple else tuple(override_ids),
                    variants,
                    changes if type(changes) is tuple else tuple(changes),
                ),
            ),
        )
        init(self, "_hash", config_hash)
        init(self, "_memo", None)

    @property
    def snapshot_rev(self) -> int | None:
        """The snapshot rev resolved against (None: nothing published, defaults only)."""
        return self._f.snapshot_rev

    @property
    def snapshot_hash(self) -> str | None:
        """That snapshot's content hash."""
        return self._f.snapshot_hash

    @property
    def environment(self) -> str:
        """The deployment environment."""
        return self._f.environment

    @property
    def context(self) -> EvaluationContext:
        """The evaluation context."""
        return self._f.context

    @property
    def resolved_at(self) -> float:
        """Seconds since the epoch (UTC) at which it was resolved."""
        return self._f.resolved_at

    @property
    def override_ids(self) -> tuple[str, ...]:
        """The overrides that decided at least one value."""
        return self._f.override_ids

    @property
    def variants(self) -> Mapping[str, str]:
        """Experiment → assigned variant, for every experiment that matched (read-only)."""
        return self._f.variants

    @property
    def changes(self) -> tuple[HotChange, ...]:
        """Hot changes applied at step boundaries, oldest first."""
        return self._f.changes

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"RunConfig is immutable (cannot set {name!r})")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"RunConfig is immutable (cannot delete {name!r})")

    # -- reading ------------------------------------------------------------------------

    def __getitem__(self, key: str) -> Any:
        # the hot read of flagmw.current()[key]: Candidate fields by index (value 0,
        # mutable 3), a few instructions less than by name
        try:
            c = self._c[key]
        except KeyError:
            raise UnknownFlagError(key, _close(key, self._c)) from None
        return copy_json(c[0]) if c[3] else c[0]

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key``, or ``default`` when the key is not in this RunConfig."""
        c = self._c.get(key)
        if c is None:
            return default
        return copy_json(c.value) if c.mutable else c.value

    def enabled(self, key: str) -> bool:
        """The value of a bool flag.

        Raises:
            UnknownFlagError: ``key`` is not in this RunConfig.
            TypeError: the flag is not a bool flag.
        """
        value = self[key]
        if value is True or value is False:
            return value
        raise TypeError(f"{key} is not a bool flag (its value is {value!r}); use rc[{key!r}]")

    def get_as(self, key: str, model: type[M]) -> M:
        """The value of a json flag validated into a pydantic ``model``.

        Raises:
            UnknownFlagError: ``key`` is not in this RunConfig.
            ValidationError: the value does not validate into ``model`` (one
                :class:`~flagmw.errors.Problem` per pydantic error, ``location``
                ``"<runconfig>"``, ``path`` the key and the field), or ``model`` is not
                a pydantic model class. Never a raw pydantic or type error.
        """
        import pydantic

        value = self[key]
        try:
            return model.model_validate(value)
        except pydantic.ValidationError as exc:
            problems = [
                Problem(
                    "<runconfig>",
                    ".".join([key, *(str(part) for part in err["loc"])]),
                    f"{key} does not validate into {model.__name__}: {err['msg']}",
                    "",
                    "wrong_type",
                )
                for err in exc.errors()
            ]
            raise ValidationError(problems, f"{key} as {model.__name__}") from None
        except Exception as exc:  # not a pydantic model, or a validator raised otherwise
            name = getattr(model, "__name__", repr(model))
            problem = Problem("<runconfig>", key, f"{key} as {name}: {exc!r}", "", "wrong_type")
            raise ValidationError([problem], f"{key} as {name}") from None

    def variant(self, experiment: str) -> str | None:
        """The variant assigned by ``experiment``, or None when it did not apply."""
        return self.variants.get(experiment)

    def __contains__(self, key: object) -> bool:
        return key in self._c

    def __iter__(self) -> Iterator[str]:
        return iter(self._c)

    def __len__(self) -> int:
        return len(self._c)

    # keys(), values() and items() are the Mapping mixins: views in sorted key order,
    # whose values are read through __getitem__ (so JSON values are copies).

    @property
    def candidates(self) -> Mapping[str, Candidate]:
        """``{key: Candidate}`` (read-only): each value with its provenance, RFC 8785
        hash fragment and mutability, in sorted key order. For code that carries a
        RunConfig's resolution on (pins, hot re-resolution); values read from a
        candidate are not copied — do not mutate them."""
        return MappingProxyType(self._c)

    @property
    def provenance(self) -> Mapping[str, Provenance]:
        """``{key: Provenance}`` (read-only)."""
        return _ProvenanceView(self._c)

    @property
    def config_hash(self) -> str:
        """``"sha256:…"`` over the canonical JSON of the values (stable across processes).

        Shared through :attr:`memo` once that was looked up (the LangGraph wrapper does,
        for the pin): then computed once per audience. Otherwise computed here, without
        the memo's lookup (a fleet's many audiences would only cycle through it)."""
        h = self._hash
        if h is None:
            memo = self._memo
            if memo is not None:
                h = memo.get("config_hash")
            if h is None:
                h = hash_candidates(self._c)
                if memo is not None:
                    memo["config_hash"] = h
            object.__setattr__(self, "_hash", h)
        return h

    @property
    def memo(self) -> dict[str, Any]:
        """Results derived from the values and provenance alone, shared by every
        RunConfig resolved from the very same candidate objects (the runs of one
        audience against one snapshot): a ``dict`` of name → result
        (``"config_hash"``; :mod:`flagmw.langgraph.pin` keeps a pin's values and
        provenance members under ``"pin"``). One lookup per RunConfig
        (:class:`~flagmw.core.candidate_memo.CandidateMemo`: identity of the candidates,
        in order, under the same keys — ``1`` and ``1.0`` are equal but pinned
        differently). Add only results that depend on nothing else; a race between
        threads costs a recomputation."""
        m = self._memo
        if m is None:
            m = _DERIVED.get(self._c)
            if m is None:
                m = {}
                _DERIVED.put(self._c, m)
            object.__setattr__(self, "_memo", m)
        return m

    @property
    def overridden_keys(self) -> list[str]:
        """Keys decided by the override layer."""
        return [k for k, c in self._c.items() if c.provenance.layer is Layer.OVERRIDE]

    # -- derived RunConfigs --------------------------------------------------------------

    def with_hot(
        self,
        fresh: RunConfig,
        keys: frozenset[str] | set[str],
        *,
        at: float,
        step: int | None = None,
    ) -> RunConfig:
        """Apply the values of hot ``keys`` from ``fresh`` (a new resolution) and record
        each change. Returns ``self`` when no value changed.

        Pinned keys, ``snapshot_rev`` and the context never change this way; the new
        provenance of a changed key names the rev or override it now comes from.
        Changes are recorded in key order (the RunConfig's sorted order), whatever the
        iteration order of ``keys`` (a set's order varies with ``PYTHONHASHSEED``).
        """
        changed: list[HotChange] = []
        merged: dict[str, Candidate] | None = None
        theirs = fresh.candidates
        for key in sorted(keys):
            old = self._c.get(key)
            new = theirs.get(key)
            if old is None or new is None:
                continue
            same = _same_json(old.value, new.value)
            if same and old.provenance == new.provenance:
                continue
            if merged is None:
                merged = dict(self._c)
            merged[key] = new
            if not same:
                changed.append(HotChange(key, old.value, new.value, new.provenance, at, step))
        if merged is None:
            return self
        ids = tuple(
            dict.fromkeys(
                c.provenance.override_id for c in merged.values() if c.provenance.override_id
            )
        )
        return RunConfig(
            merged,
            snapshot_rev=self.snapshot_rev,
            snapshot_hash=self.snapshot_hash,
            environment=self.environment,
            context=self.context,
            resolved_at=self.resolved_at,
            override_ids=ids,
            variants=self.variants,
            changes=self.changes + tuple(changed),
        )

    def _rebased(self, context: EvaluationContext, resolved_at: float) -> RunConfig:
        """Internal (the audience memo of :func:`flagmw.core.resolve.resolve`): this
        RunConfig for another context of its audience, resolved at ``resolved_at`` — the
        same candidates, hash and memo, every other field kept."""
        f = self._f
        out = object.__new__(RunConfig)
        init = object.__setattr__
        init(out, "_c", self._c)
        init(out, "_f", _new_fields(_Fields, (*f[:3], context, resolved_at, *f[5:])))
        init(out, "_hash", self._hash)
        init(out, "_memo", self._memo)
        return out

    # -- JSON ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The JSON form as a dict of JSON primitives.

        Provenance is listed only for keys that did not come from the default layer.
        """
        provenance = {
            k: c.provenance.to_dict()
            for k, c in self._c.items()
            if c.provenance.layer is not Layer.DEFAULT
        }
        out: dict[str, Any] = {
            "format": FORMAT,
            "environment": self.environment,
            "snapshot_rev": self.snapshot_rev,
            "snapshot_hash": self.snapshot_hash,
            "resolved_at": self.resolved_at,
            "context": self.context.to_dict(),
            "values": {k: copy_json(c.value) if c.mutable else c.value for k, c in self._c.items()},
            "provenance": provenance,
            "override_ids": list(self.override_ids),
            "variants": dict(self.variants),
            "config_hash": self.config_hash,
        }
        if self.changes:
            out["changes"] = [ch.to_dict() for ch in self.changes]
        return out

    def to_json(self) -> str:
        """The JSON form as compact text (see :meth:`to_dict`)."""
        return json.dumps(
            self.to_dict(), separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )

    @classmethod
    def from_json(cls, data: str | bytes | Mapping[str, Any], *, verify: bool = True) -> RunConfig:
        """Rebuild a RunConfig from :meth:`to_json` / :meth:`to_dict` output.

        Raises:
            IntegrityError: the stored ``config_hash`` does not match the values (with
                ``verify=True``), or the form is not a flagmw RunConfig.
        """
        if isinstance(data, str | bytes):
            try:
                data = json.loads(data)
            except json.JSONDecodeError as exc:
                raise IntegrityError(f"stored RunConfig is not valid JSON: {exc}") from None
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            raise IntegrityError(f"not a flagmw RunConfig (expected format {FORMAT!r})")
        try:
            values = data["values"]
            prov = data.get("provenance", {})
            candidates = {
                k: make_candidate(
                    k, v, Provenance.from_dict(prov[k]) if k in prov else DEFAULT_PROVENANCE
                )
                for k, v in sorted(values.items())
            }
            rc = cls(
                candidates,
                snapshot_rev=data.get("snapshot_rev"),
                snapshot_hash=data.get("snapshot_hash"),
                environment=data["environment"],
                context=EvaluationContext.from_dict(data.get("context", {})).frozen(),
                resolved_at=float(data["resolved_at"]),
                override_ids=tuple(data.get("override_ids", ())),
                variants=dict(data.get("variants", {})),
                changes=tuple(HotChange.from_dict(c) for c in data.get("changes", ())),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise IntegrityError(f"stored RunConfig is malformed: {exc!r}") from None
        stored = data.get("config_hash")
        if verify and stored != rc.config_hash and stored != legacy_hash(values):
            raise IntegrityError(
                f"stored RunConfig's config_hash {stored} does not match its values "
                f"({rc.config_hash}); the stored form was altered or truncated"
            )
        return rc

    # -- identity -----------------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RunConfig):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"RunConfig(rev={self.snapshot_rev}, env={self.environment!r}, "
            f"{len(self._c)} flags, hash={self.config_hash[:19]}…)"
        )


_NUMBERS = (int, float)


def _same_json(a: Any, b: Any) -> bool:
    """One JSON value (RFC 8785 identity): equal, and of one type except that an int
    and a float of the same value are one JSON number (a pin written as JSON gives
    back ``1`` for ``1.0``); ``True`` is not ``1``."""
    if a != b:
        return False
    ta, tb = type(a), type(b)
    return ta is tb or (ta in _NUMBERS and tb in _NUMBERS)


# candidates → the results RunConfig.memo shares between the runs of one audience
_DERIVED: CandidateMemo[dict[str, Any]] = CandidateMemo()


def _close(key: str, keys: Mapping[str, Any]) -> list[str]:
    from flagmw.core.problems import suggest

    return suggest(key, keys)
