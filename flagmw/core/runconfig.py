"""RunConfig: the immutable result of resolution for one run, with provenance.

A RunConfig is what lands in the LangGraph checkpoint and on the trace. It
serialises to JSON primitives only (:meth:`RunConfig.to_json`) and comes back
identical (:meth:`RunConfig.from_json`), with its ``config_hash`` verified.

``config_hash`` is ``"sha256:" + sha256(canonical JSON of the values)``, where
canonical JSON has sorted keys, no whitespace and UTF-8 kept — anyone can recompute
it from the values alone, in any process or language.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any, NamedTuple, TypeVar

import pydantic

from flagmw.core._schema import canonical_json
from flagmw.core.context import EvaluationContext
from flagmw.errors import IntegrityError, UnknownFlagError

__all__ = ["FORMAT", "LAYER_ORDER", "HotChange", "Layer", "Provenance", "RunConfig"]

#: The ``format`` tag of the JSON form.
FORMAT = "flagmw.runconfig/1"

M = TypeVar("M", bound=pydantic.BaseModel)


class Layer(StrEnum):
    """The resolution layers, lowest precedence first (DESIGN §2)."""

    DEFAULT = "default"
    ENVIRONMENT = "environment"
    SNAPSHOT = "snapshot"
    TENANT = "tenant"
    ROUTE = "route"
    EXPERIMENT = "experiment"
    OVERRIDE = "override"


#: Layer → precedence (higher wins).
LAYER_ORDER: Mapping[Layer, int] = {layer: i for i, layer in enumerate(Layer)}


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where one resolved value came from.

    Attributes:
        layer: the layer that won.
        rev: the snapshot rev the value came from (None for ``default``, process
            variables and overrides).
        scope: the layer's scope: the environment name or ``FF_…`` process variable
            (environment), the tenant id (tenant), the route (route), or
            ``global`` / ``tenant:<id>`` / ``route:<name>`` (override).
        rule: the name of the rule that produced it, when a rule did.
        experiment, variant: the experiment and the variant assigned, for ``experiment``.
        override_id, reason: the override and its reason, for ``override``.
    """

    layer: Layer
    rev: int | None = None
    scope: str | None = None
    rule: str | None = None
    experiment: str | None = None
    variant: str | None = None
    override_id: str | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON primitives; None fields are left out."""
        out: dict[str, Any] = {"layer": self.layer.value}
        for name in ("rev", "scope", "rule", "experiment", "variant", "override_id", "reason"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Provenance:
        """Inverse of :meth:`to_dict`."""
        return cls(
            Layer(data["layer"]),
            data.get("rev"),
            data.get("scope"),
            data.get("rule"),
            data.get("experiment"),
            data.get("variant"),
            data.get("override_id"),
            data.get("reason"),
        )

    def describe(self) -> str:
        """A short human form, e.g. ``tenant acme rule enterprise @rev 3``."""
        parts = [self.layer.value]
        if self.scope:
            parts.append(self.scope)
        if self.rule:
            parts.append(f"rule {self.rule}")
        if self.experiment:
            parts.append(f"{self.experiment}={self.variant}")
        if self.override_id:
            parts.append(self.override_id)
        if self.rev is not None:
            parts.append(f"@rev {self.rev}")
        return " ".join(parts)


DEFAULT_PROVENANCE = Provenance(Layer.DEFAULT)


class Candidate(NamedTuple):
    """A value a layer offers for one key, precompiled: the value, its provenance,
    its canonical-JSON fragment ``"key":value`` (for the config hash), and whether
    reads must copy it (lists and mappings)."""

    value: Any
    provenance: Provenance
    fragment: str
    mutable: bool


def copy_json(value: Any) -> Any:
    """A deep copy of a JSON value (lists, dicts, primitives) — several times faster than
    ``copy.deepcopy``, which reads of json flags and ``RunConfig.values`` use."""
    t = type(value)
    if t is list:
        return [copy_json(v) if type(v) in _CONTAINERS else v for v in value]
    if t is dict:
        return {k: copy_json(v) if type(v) in _CONTAINERS else v for k, v in value.items()}
    return value


_CONTAINERS = (list, dict)


def make_candidate(key: str, value: Any, provenance: Provenance) -> Candidate:
    """Build a :class:`Candidate` (computes the hash fragment once)."""
    return Candidate(
        value, provenance, f"{_encode_str(key)}:{json_fragment(value)}", type(value) in _CONTAINERS
    )


def json_fragment(value: Any) -> str:
    """The canonical JSON of ``value`` (as :func:`flagmw.core._schema.canonical_json`), with
    the primitives encoded directly: byte-identical to ``json.dumps(value,
    ensure_ascii=False)``, without building an encoder per call (tenant overlays are
    compiled into candidates on their first run)."""
    t = type(value)
    if t is str:
        return _encode_str(value)
    if t is bool:
        return "true" if value else "false"
    if t is int:
        return int.__repr__(value)
    if t is float:
        return float.__repr__(value)  # finite: checked when the value was validated
    if value is None:
        return "null"
    return canonical_json(value)


_encode_str = json.encoder.encode_basestring  # ensure_ascii=False form of a JSON string


@dataclass(frozen=True, slots=True)
class HotChange:
    """A hot key whose value changed at a step boundary inside a run.

    Attributes:
        key: the flag.
        old, new: the values before and after.
        provenance: the provenance of the new value.
        at: when it was re-resolved (seconds since the epoch).
        step: the LangGraph superstep before which it changed (None outside a graph).
    """

    key: str
    old: Any
    new: Any
    provenance: Provenance
    at: float
    step: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON primitives."""
        return {
            "key": self.key,
            "old": self.old,
            "new": self.new,
            "provenance": self.provenance.to_dict(),
            "at": self.at,
            "step": self.step,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HotChange:
        """Inverse of :meth:`to_dict`."""
        return cls(
            data["key"],
            data["old"],
            data["new"],
            Provenance.from_dict(data["provenance"]),
            float(data["at"]),
            data.get("step"),
        )


class _ProvenanceView(Mapping[str, Provenance]):
    __slots__ = ("_c",)

    def __init__(self, candidates: Mapping[str, Candidate]) -> None:
        self._c = candidates

    def __getitem__(self, key: str) -> Provenance:
        return self._c[key][1]

    def __iter__(self) -> Iterator[str]:
        return iter(self._c)

    def __len__(self) -> int:
        return len(self._c)


_NO_VARIANTS: Mapping[str, str] = MappingProxyType({})


class RunConfig:
    """The resolved configuration of one run. Immutable.

    Read values with ``rc[key]``, ``rc.get(key, default)``, ``rc.enabled(key)`` and
    ``rc.variant(experiment)``. JSON values (lists, mappings) are returned as copies,
    so the pinned config cannot be mutated through them.

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

    # The fields live in one tuple behind read-only properties: an immutable object built
    # with three attribute writes (a resolve builds one per run).
    __slots__ = ("_c", "_f", "_hash")

    _c: Mapping[str, Candidate]
    _f: tuple[Any, ...]
    _hash: str | None

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
        )
        init(self, "_hash", config_hash)

    @property
    def snapshot_rev(self) -> int | None:
        """The snapshot rev resolved against (None: nothing published, defaults only)."""
        return self._f[0]  # type: ignore[no-any-return]

    @property
    def snapshot_hash(self) -> str | None:
        """That snapshot's content hash."""
        return self._f[1]  # type: ignore[no-any-return]

    @property
    def environment(self) -> str:
        """The deployment environment."""
        return self._f[2]  # type: ignore[no-any-return]

    @property
    def context(self) -> EvaluationContext:
        """The evaluation context."""
        return self._f[3]  # type: ignore[no-any-return]

    @property
    def resolved_at(self) -> float:
        """Seconds since the epoch (UTC) at which it was resolved."""
        return self._f[4]  # type: ignore[no-any-return]

    @property
    def override_ids(self) -> tuple[str, ...]:
        """The overrides that decided at least one value."""
        return self._f[5]  # type: ignore[no-any-return]

    @property
    def variants(self) -> Mapping[str, str]:
        """Experiment → assigned variant, for every experiment that matched (read-only)."""
        return self._f[6]  # type: ignore[no-any-return]

    @property
    def changes(self) -> tuple[HotChange, ...]:
        """Hot changes applied at step boundaries, oldest first."""
        return self._f[7]  # type: ignore[no-any-return]

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"RunConfig is immutable (cannot set {name!r})")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"RunConfig is immutable (cannot delete {name!r})")

    # -- reading ------------------------------------------------------------------------

    def __getitem__(self, key: str) -> Any:
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
        return copy_json(c[0]) if c[3] else c[0]

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
        """The value of a json flag validated into a pydantic ``model``."""
        return model.model_validate(self[key])

    def variant(self, experiment: str) -> str | None:
        """The variant assigned by ``experiment``, or None when it did not apply."""
        return self.variants.get(experiment)

    def __contains__(self, key: object) -> bool:
        return key in self._c

    def __iter__(self) -> Iterator[str]:
        return iter(self._c)

    def __len__(self) -> int:
        return len(self._c)

    def keys(self) -> list[str]:
        """All keys, sorted."""
        return list(self._c)

    @property
    def values(self) -> dict[str, Any]:
        """A fresh ``{key: value}`` dict (JSON primitives)."""
        return {k: copy_json(c[0]) if c[3] else c[0] for k, c in self._c.items()}

    @property
    def provenance(self) -> Mapping[str, Provenance]:
        """``{key: Provenance}`` (read-only)."""
        return _ProvenanceView(self._c)

    @property
    def config_hash(self) -> str:
        """``"sha256:…"`` over the canonical JSON of the values (stable across processes)."""
        h = self._hash
        if h is None:
            h = _hash_candidates(self._c)
            object.__setattr__(self, "_hash", h)
        return h

    @property
    def overridden_keys(self) -> list[str]:
        """Keys decided by the override layer."""
        return [k for k, c in self._c.items() if c[1].layer is Layer.OVERRIDE]

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
        """
        changed: list[HotChange] = []
        merged: dict[str, Candidate] | None = None
        for key in keys:
            old = self._c.get(key)
            new = fresh._c.get(key)
            if old is None or new is None:
                continue
            if (
                old.value == new.value
                and type(old.value) is type(new.value)
                and (old.provenance == new.provenance)
            ):
                continue
            if merged is None:
                merged = dict(self._c)
            merged[key] = new
            if old.value != new.value or type(old.value) is not type(new.value):
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

    # -- JSON ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The JSON form as a dict of JSON primitives.

        Provenance is listed only for keys that did not come from the default layer.
        """
        provenance = {
            k: c[1].to_dict() for k, c in self._c.items() if c[1].layer is not Layer.DEFAULT
        }
        out: dict[str, Any] = {
            "format": FORMAT,
            "environment": self.environment,
            "snapshot_rev": self.snapshot_rev,
            "snapshot_hash": self.snapshot_hash,
            "resolved_at": self.resolved_at,
            "context": self.context.to_dict(),
            "values": self.values,
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
        if verify and stored != rc.config_hash:
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


def _hash_candidates(candidates: Mapping[str, Candidate]) -> str:
    # RunConfig keeps its candidates in sorted key order (the resolver starts from a
    # sorted base and only replaces entries; from_json sorts), so no sort is needed here.
    body = "{" + ",".join([c[2] for c in candidates.values()]) + "}"
    return "sha256:" + hashlib.sha256(body.encode("utf-8")).hexdigest()


def _close(key: str, keys: Mapping[str, Any]) -> list[str]:
    from flagmw.core._schema import suggest

    return suggest(key, keys)
