"""The other direction: an existing OpenFeature provider feeding flagmw's ``snapshot``
layer, for a team moving its flags from another system one step at a time.

:func:`read_provider` asks the provider for every flag of the registry (with one
evaluation context, empty by default: the provider's static answer) through the typed
resolve matching the flag's type; :func:`publish_from_provider` writes those values into
the head snapshot's ``values`` section (everything else of the head is kept) and
publishes it as a new rev — validated like any publish, so a value that does not fit
its flag publishes nothing.

It reads what the provider answers *now*; per-user targeting stays in the other system
until it is written as flagmw rules. Run it again to pick up changes (it publishes
nothing when nothing changed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from openfeature.evaluation_context import EvaluationContext as OFContext
from openfeature.exception import ErrorCode
from openfeature.provider import FeatureProvider

from flagmw.client.client import FlagClient, PublishResult
from flagmw.core.flag_spec import FlagType
from flagmw.core.registry import FlagRegistry
from flagmw.errors import NotFoundError

__all__ = ["ProviderValues", "publish_from_provider", "read_provider"]

_RESOLVE = {
    FlagType.BOOL: "resolve_boolean_details",
    FlagType.INT: "resolve_integer_details",
    FlagType.FLOAT: "resolve_float_details",
    FlagType.STRING: "resolve_string_details",
    FlagType.ENUM: "resolve_string_details",
    FlagType.JSON: "resolve_object_details",
}


@dataclass(frozen=True)
class ProviderValues:
    """What a provider answered for a registry.

    Attributes:
        values: flag key → the provider's value (flags it answered without error).
        missing: keys the provider does not know (``FLAG_NOT_FOUND``): left to flagmw.
        problems: key → the error the provider answered (another error code, or an
            exception it raised), for the operator to look at.
    """

    values: dict[str, Any] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    problems: dict[str, str] = field(default_factory=dict)


def read_provider(
    provider: FeatureProvider, registry: FlagRegistry, context: OFContext | None = None
) -> ProviderValues:
    """Ask ``provider`` for every flag of ``registry`` (the flag's default as the
    fallback). Never raises for a provider's error: it lands in ``problems``."""
    out = ProviderValues()
    for flag in registry:
        resolve = getattr(provider, _RESOLVE[flag.type])
        try:
            details = resolve(flag.key, flag.default, context)
        except Exception as exc:
            out.problems[flag.key] = f"{type(exc).__name__}: {exc}"
            continue
        if details.error_code == ErrorCode.FLAG_NOT_FOUND:
            out.missing.append(flag.key)
        elif details.error_code is not None:
            out.problems[flag.key] = f"{details.error_code}: {details.error_message or ''}"
        else:
            out.values[flag.key] = details.value
    return out


def publish_from_provider(
    client: FlagClient,
    provider: FeatureProvider,
    *,
    author: str,
    message: str,
    context: OFContext | None = None,
) -> tuple[PublishResult, ProviderValues]:
    """Publish the provider's values as the ``values`` of a new snapshot rev (on top of
    the head, whose other sections are kept).

    Returns:
        the publish result (``published`` False when nothing changed) and what was read.

    Raises:
        ValidationError: a value does not fit its flag (nothing is published).
        ConflictError: another publish happened meanwhile (read again and retry).
    """
    read = read_provider(provider, client.registry, context)
    try:
        head = client.get_snapshot()
        document: dict[str, Any] = _plain(head.document)
        parent: int | None = head.info.rev
    except NotFoundError:
        document, parent = {}, None
    document["values"] = {**document.get("values", {}), **read.values}
    result = client.publish(document, author=author, message=message, parent_rev=parent)
    return result, read


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
