"""The structure of a snapshot document: its format version, its sections, the
pydantic models of its parts (rules, rollouts, overlays, experiments) and the empty
document. See ``docs/flags-file.md`` for every field.

The models are defined in :mod:`flagmw.core.snapshot_models` and imported from here on
first use (PEP 562): a process that only reads stored snapshots (``flagmw kill``, a
client whose registry matches the head's) never validates a document, so it does not
import pydantic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - the lazy names, for type checkers
    from flagmw.core.snapshot_models import (
        ExperimentSpec,
        OverlaySpec,
        RolloutSpec,
        RuleSpec,
        TenantSpec,
    )

__all__ = [
    "FORMAT_VERSION",
    "OVERLAY_FIELDS",
    "SECTIONS",
    "ExperimentSpec",
    "OverlaySpec",
    "RolloutSpec",
    "RuleSpec",
    "TenantSpec",
    "bucketing_fields",
    "empty_document",
]

#: The version of the snapshot document format.
FORMAT_VERSION = 1

SECTIONS = (
    "version",
    "description",
    "flags",
    "environments",
    "values",
    "rules",
    "segments",
    "tenants",
    "routes",
    "experiments",
)

OVERLAY_FIELDS = ("description", "values", "rules")


def bucketing_fields(spec: RolloutSpec | ExperimentSpec, default_salt: str) -> dict[str, Any]:
    """The normalised ``salt`` of a rollout or an experiment (``default_salt``, its rule's
    or its own name, when none is given) and its ``bucketing`` when it is not the default
    ``flagmw`` (left out otherwise, so documents written before it keep their content
    hash). An empty salt is kept in ``flagd`` mode only: flagd can hash the unit alone."""
    keep_empty = spec.salt == "" and spec.bucketing == "flagd"
    out: dict[str, Any] = {"salt": spec.salt if spec.salt or keep_empty else default_salt}
    if spec.bucketing != "flagmw":
        out["bucketing"] = spec.bucketing
    return out


def empty_document() -> dict[str, Any]:
    """The normalised document with every section present and empty."""
    return {
        "version": FORMAT_VERSION,
        "environments": {},
        "values": {},
        "rules": [],
        "segments": {},
        "tenants": {},
        "routes": {},
        "experiments": {},
    }


_MODELS = frozenset({"ExperimentSpec", "OverlaySpec", "RolloutSpec", "RuleSpec", "TenantSpec"})


def __getattr__(name: str) -> Any:
    """A pydantic model of :mod:`flagmw.core.snapshot_models` on first use (PEP 562);
    kept in this module afterwards."""
    if name in _MODELS:
        from flagmw.core import snapshot_models

        value = getattr(snapshot_models, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
