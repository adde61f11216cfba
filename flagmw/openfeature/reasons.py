"""flagmw's answer in OpenFeature's words: the reason (from the winning layer), the
variant, the type check and the error codes, and the flag metadata.

**Reasons** (the same mapping the trace writes as ``feature_flag.result.reason``,
upper-cased — ``tests/test_openfeature_mapping.py`` checks the two agree for every
provenance):

=================================  ===================
winning layer                      OpenFeature reason
=================================  ===================
``default`` (the registry)         ``DEFAULT``
``environment`` / ``snapshot``     ``STATIC``
a ``snapshot`` rule                ``TARGETING_MATCH``
``tenant`` / ``route``             ``TARGETING_MATCH``
``experiment``                     ``SPLIT``
``override`` turning a bool off    ``DISABLED`` (a kill switch)
any other ``override``             ``STATIC``
the client serves a stale config   ``STALE`` (the layer stays in the metadata)
=================================  ===================

**Error codes**: an unknown key → ``FLAG_NOT_FOUND``; a value of another type than the
one asked for → ``TYPE_MISMATCH``; a context that does not map → ``INVALID_CONTEXT``;
an experiment on the flag that cannot bucket because the context lacks its unit →
``TARGETING_KEY_MISSING``; a pinned config or document that fails its checks →
``PARSE_ERROR``; anything else → ``GENERAL``. An error answer carries the caller's
default value and reason ``ERROR``; it is returned, never raised, so no evaluation
crashes a run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import FlagType, Reason

from flagmw.core.candidate import copy_json
from flagmw.core.provenance import Layer, Provenance
from flagmw.errors import FlagmwError, IntegrityError, UnknownFlagError, ValidationError
from flagmw.openfeature.context import InvalidContext

__all__ = [
    "LAYER_REASONS",
    "TypeMismatch",
    "error_code_for",
    "metadata_for",
    "reason_for",
    "typed_value",
    "variant_for",
]

#: Winning layer → OpenFeature reason (before the rule, kill and stale refinements).
LAYER_REASONS: Mapping[Layer, Reason] = {
    Layer.DEFAULT: Reason.DEFAULT,
    Layer.ENVIRONMENT: Reason.STATIC,
    Layer.SNAPSHOT: Reason.STATIC,
    Layer.TENANT: Reason.TARGETING_MATCH,
    Layer.ROUTE: Reason.TARGETING_MATCH,
    Layer.VERSION: Reason.SPLIT,  # an agent version assigned by a rollout's sticky hash
    Layer.EXPERIMENT: Reason.SPLIT,
    Layer.OVERRIDE: Reason.STATIC,
}


class TypeMismatch(TypeError):
    """The flag's value is not of the type the caller asked for."""


def reason_for(provenance: Provenance, value: Any, *, stale: bool = False) -> Reason:
    """The OpenFeature reason of ``value`` won by ``provenance`` (see the module table).

    Args:
        stale: the answer comes from a client serving an older config than its store's
            (unreachable store, rejected head): ``STALE`` whatever the layer.
    """
    if stale:
        return Reason.STALE
    layer = provenance.layer
    if layer is Layer.OVERRIDE and value is False:
        return Reason.DISABLED
    if layer is Layer.SNAPSHOT and provenance.rule:
        return Reason.TARGETING_MATCH
    return LAYER_REASONS[layer]


def variant_for(
    provenance: Provenance, fragment: str, names: Mapping[str, str] | None
) -> str | None:
    """The variant reported: the experiment's variant; else the name given to the value
    (``names``: canonical ``"key":value`` fragment → name, for flags imported from a
    system whose values are named, such as flagd's ``variants``); else the rule's name;
    else None."""
    if provenance.variant is not None:
        return provenance.variant
    if names:
        name = names.get(fragment)
        if name is not None:
            return name
    return provenance.rule


def typed_value(flag_type: FlagType, value: Any) -> Any:
    """``value`` as the OpenFeature type asked for: a bool for ``BOOLEAN``, text for
    ``STRING`` (``enum`` and ``string`` flags), an int (never a bool) for ``INTEGER``,
    a float for ``FLOAT`` (an integer value is widened), a copy of a mapping or list for
    ``OBJECT`` (``json`` flags).

    Raises:
        TypeMismatch: the value is of another type.
    """
    kind = type(value)
    if flag_type is FlagType.BOOLEAN:
        ok = kind is bool
    elif flag_type is FlagType.STRING:
        ok = isinstance(value, str)
    elif flag_type is FlagType.INTEGER:
        ok = isinstance(value, int) and kind is not bool
    elif flag_type is FlagType.FLOAT:
        if isinstance(value, int) and kind is not bool:
            return float(value)
        ok = isinstance(value, float)
    else:
        if isinstance(value, dict | list):
            return copy_json(value)
        ok = False
    if not ok:
        raise TypeMismatch(
            f"the flag's value is {'null' if value is None else kind.__name__}, "
            f"not {flag_type.value.lower()}"
        )
    return value


def error_code_for(exc: BaseException) -> ErrorCode:
    """The OpenFeature error code of an exception met while resolving."""
    if isinstance(exc, UnknownFlagError):
        return ErrorCode.FLAG_NOT_FOUND
    if isinstance(exc, TypeMismatch):
        return ErrorCode.TYPE_MISMATCH
    if isinstance(exc, InvalidContext):
        return ErrorCode.INVALID_CONTEXT
    if isinstance(exc, ValidationError | IntegrityError):
        return ErrorCode.PARSE_ERROR
    if isinstance(exc, FlagmwError):
        return ErrorCode.GENERAL
    return ErrorCode.GENERAL


def metadata_for(
    provenance: Provenance,
    rev: int | None,
    *,
    context_id: str | None,
    config_hash: str | None = None,
    defined: Mapping[str, bool | int | float | str] | None = None,
) -> dict[str, bool | int | float | str]:
    """The ``flag_metadata`` of an answer: the flag's own metadata (``defined``), then
    ``version`` (the snapshot rev, as text, as OpenTelemetry's ``feature_flag.version``
    wants it), ``layer``, ``scope``, ``rule``, ``experiment``, ``overrideId``,
    ``contextId`` (the targeting key's field of the context) and, inside a wrapped run,
    ``configHash`` and ``pinned``. Keys whose value is None are left out."""
    out: dict[str, bool | int | float | str] = dict(defined) if defined else {}
    if rev is not None:
        out["version"] = str(rev)
    out["layer"] = provenance.layer.value
    for name, value in (
        ("scope", provenance.scope),
        ("rule", provenance.rule),
        ("experiment", provenance.experiment),
        ("overrideId", provenance.override_id),
        ("contextId", context_id),
        ("configHash", config_hash),
    ):
        if value is not None:
            out[name] = value
    if config_hash is not None:
        out["pinned"] = True
    return out
