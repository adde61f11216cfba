"""The OpenFeature provider (``pip install 'flagmw[openfeature]'``): flagmw answers an
OpenFeature client's evaluations, with the reason of the winning layer, the variant and
the snapshot rev, and emits provider events from the client's change counter. See
``docs/openfeature.md``."""

from __future__ import annotations

try:
    import openfeature.provider  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "flagmw.openfeature needs the OpenFeature SDK: pip install 'flagmw[openfeature]'"
    ) from exc

from flagmw.openfeature.context import ContextMapping, InvalidContext, to_flagmw_context
from flagmw.openfeature.events import EventWatcher
from flagmw.openfeature.provider import PROVIDER_NAME, FlagmwProvider
from flagmw.openfeature.reasons import LAYER_REASONS, reason_for
from flagmw.openfeature.source import ProviderValues, publish_from_provider, read_provider

__all__ = [
    "LAYER_REASONS",
    "PROVIDER_NAME",
    "ContextMapping",
    "EventWatcher",
    "FlagmwProvider",
    "InvalidContext",
    "ProviderValues",
    "publish_from_provider",
    "read_provider",
    "reason_for",
    "to_flagmw_context",
]
