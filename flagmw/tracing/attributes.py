"""Pure helpers of the trace writer: attribute names, value encoding, the capped
``flagmw.config`` JSON, user-id policy and the ``feature_flag.result.reason`` mapping.

Nothing here imports OpenTelemetry, so the rules can be tested (and property-tested)
without a tracer. :mod:`flagmw.tracing` is the only user.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, Literal

from flagmw.core.hot_change import HotChange
from flagmw.core.provenance import Layer, Provenance
from flagmw.core.runconfig import RunConfig

# -- attribute names -------------------------------------------------------------------------
# GenAI agent-span conventions (semantic-conventions-genai; status: development).
GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
GEN_AI_AGENT_NAME = "gen_ai.agent.name"
GEN_AI_CONVERSATION_ID = "gen_ai.conversation.id"
GEN_AI_PROVIDER_NAME = "gen_ai.provider.name"
INVOKE_AGENT = "invoke_agent"
# Stable general attribute.
ERROR_TYPE = "error.type"

# flagmw's own namespace (the semconv naming guide forbids custom keys under gen_ai.* or
# feature_flag.*).
SNAPSHOT_REV = "flagmw.snapshot_rev"
CONFIG_HASH = "flagmw.config_hash"
ENVIRONMENT = "flagmw.environment"
TENANT_ID = "flagmw.tenant_id"
USER_ID = "flagmw.user_id"
ROUTE = "flagmw.route"
OVERRIDE_IDS = "flagmw.override_ids"
PINNED_OVERRIDE_IDS = "flagmw.pinned_override_ids"
CHANGE_COUNT = "flagmw.change_count"
CHANGED_KEYS = "flagmw.changed_keys"
EFFECTIVE_PREFIX = "flagmw.effective."
RESUMED = "flagmw.resumed"
#: true when the run was resolved while its client served stale config (its store
#: unreachable, or the head snapshot rejected): the last good snapshot, not the newest
STALE = "flagmw.stale"
FLAG_COUNT = "flagmw.flag_count"
FLAGS_TRUNCATED = "flagmw.flags_truncated"
FLAGS_OMITTED = "flagmw.flags_omitted"
CONFIG = "flagmw.config"
OUTCOME = "flagmw.outcome"
FLAG_PREFIX = "flagmw.flag."
LINK_KIND = "flagmw.link"

# The log-based event of the feature-flag conventions (release candidate since semconv
# v1.35; names as of v1.44). Defined here rather than imported from
# ``opentelemetry.semconv._incubating``, a private path.
FEATURE_FLAG_EVALUATION = "feature_flag.evaluation"
FEATURE_FLAG_KEY = "feature_flag.key"
FEATURE_FLAG_RESULT_VALUE = "feature_flag.result.value"
FEATURE_FLAG_RESULT_VARIANT = "feature_flag.result.variant"
FEATURE_FLAG_RESULT_REASON = "feature_flag.result.reason"
FEATURE_FLAG_VERSION = "feature_flag.version"
FEATURE_FLAG_PROVIDER_NAME = "feature_flag.provider.name"
FEATURE_FLAG_CONTEXT_ID = "feature_flag.context.id"
#: The exact layer, kept next to the lossy ``result.reason`` (reference §1.4).
FLAGMW_SOURCE = "flagmw.source"
PROVIDER_NAME = "flagmw"

#: What a sensitive flag's value is replaced with, everywhere in the trace.
REDACTED = "[redacted]"
#: Longest per-flag / event string value written, in characters; longer ones are cut
#: and end with :data:`ELLIPSIS`.
MAX_VALUE_CHARS = 1024
ELLIPSIS = "…"

UserIdPolicy = Literal["keep", "hash", "drop"]
USER_ID_POLICIES: tuple[str, ...] = ("keep", "hash", "drop")

# Layer → feature_flag.result.reason (otel-conventions reference §1.4). Two cases depend
# on more than the layer: see :func:`result_reason`.
_REASONS: Mapping[Layer, str] = {
    Layer.DEFAULT: "default",
    Layer.ENVIRONMENT: "static",
    Layer.SNAPSHOT: "static",
    Layer.TENANT: "targeting_match",
    Layer.ROUTE: "targeting_match",
    Layer.VERSION: "split",
    Layer.EXPERIMENT: "split",
    Layer.OVERRIDE: "targeting_match",
}


def dumps(value: Any) -> str:
    """Compact JSON with sorted keys and UTF-8 kept (the form of every JSON attribute)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def clip(text: str, max_chars: int = MAX_VALUE_CHARS) -> str:
    """``text`` cut to at most ``max_chars`` characters, ending with ``…`` when cut."""
    if len(text) <= max_chars:
        return text
    return text[: max_chars - len(ELLIPSIS)] + ELLIPSIS


def encode_value(value: Any, *, sensitive: bool = False) -> str | bool | int | float:
    """A flag value as an OpenTelemetry attribute value.

    ``bool`` / ``int`` / finite ``float`` stay as they are; strings are clipped to
    :data:`MAX_VALUE_CHARS`; ``None``, lists and mappings become compact JSON text
    (sorted keys), clipped the same way; ``sensitive`` values become ``"[redacted]"``.
    Flat primitives index and render everywhere; native map attributes do not (several
    backends stringify or drop them).
    """
    if sensitive:
        return REDACTED
    if isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return clip(value)
    return clip(dumps(value))


def hash_user_id(user_id: str, salt: str = "") -> str:
    """``"sha256:" + the first 16 hex digits of sha256(salt + user_id)`` (UTF-8).

    With the default empty salt anyone can recompute it from a known id (useful to join
    traces with other systems, but only pseudonymous: short or guessable ids can be
    found by trying them); pass a secret salt to make that impossible.
    """
    digest = hashlib.sha256((salt + user_id).encode("utf-8")).hexdigest()
    return "sha256:" + digest[:16]


def apply_user_policy(user_id: str | None, policy: UserIdPolicy, salt: str = "") -> str | None:
    """The user id as it may appear in the trace under ``policy`` (None: leave it out)."""
    if user_id is None or policy == "drop":
        return None
    if policy == "hash":
        return hash_user_id(user_id, salt)
    return user_id


def result_reason(provenance: Provenance, value: Any) -> str:
    """The ``feature_flag.result.reason`` of a value with ``provenance``.

    ``default`` → ``default``; ``environment`` / ``snapshot`` → ``static`` (a snapshot
    *rule* → ``targeting_match``); ``tenant`` / ``route`` → ``targeting_match``;
    ``version`` / ``experiment`` → ``split``; ``override`` → ``disabled`` when it turns a
    bool flag off (a kill switch), else ``targeting_match`` (an operator forced the value
    for its scope).
    """
    layer = provenance.layer
    if layer is Layer.OVERRIDE and value is False:
        return "disabled"
    if layer is Layer.SNAPSHOT and provenance.rule:
        return "targeting_match"
    return _REASONS.get(layer, "unknown")


#: context attributes of an agent-version rollout copied to the root span as they are
#: (:mod:`flagmw.rollout`)
ROLLOUT_CONTEXT_ATTRIBUTES = ("flagmw.version", "flagmw.rollout", "flagmw.stage")


def run_summary(
    rc: RunConfig,
    creation: Mapping[str, Any],
    *,
    user_ids: UserIdPolicy,
    salt: str,
    resumed: bool,
    stale: bool,
) -> dict[str, Any]:
    """The run-level attributes of a root span at run start: ``creation`` (the span's
    own), then the pinned RunConfig's snapshot rev, config hash, environment, tenant,
    user id (under ``user_ids``), route, rollout assignment, override ids, an empty
    change record (``run_ended`` fills it) and whether the run resumed or its client
    serves a stale config."""
    ctx = rc.context
    summary: dict[str, Any] = dict(creation)
    if rc.snapshot_rev is not None:
        summary[SNAPSHOT_REV] = rc.snapshot_rev
    summary[CONFIG_HASH] = rc.config_hash
    summary[ENVIRONMENT] = rc.environment
    if ctx.tenant_id is not None:
        summary[TENANT_ID] = ctx.tenant_id
    uid = apply_user_policy(ctx.user_id, user_ids, salt)
    if uid is not None:
        summary[USER_ID] = uid
    if ctx.route is not None:
        summary[ROUTE] = ctx.route
    if ctx.attributes:
        for name in ROLLOUT_CONTEXT_ATTRIBUTES:
            if name in ctx.attributes:
                summary[name] = ctx.attributes[name]
    summary[OVERRIDE_IDS] = list(rc.override_ids)
    summary[CHANGE_COUNT] = 0
    summary[CHANGED_KEYS] = []
    summary[RESUMED] = resumed
    summary[STALE] = stale
    return summary


def flag_order(rc: RunConfig, hot_keys: Collection[str]) -> list[str]:
    """The keys of ``rc`` in the order they get the attribute budget: overridden keys,
    then hot keys, then every other key; each group sorted."""
    prov = rc.provenance
    overridden: list[str] = []
    hot: list[str] = []
    rest: list[str] = []
    for key in sorted(rc):
        if prov[key].layer is Layer.OVERRIDE:
            overridden.append(key)
        elif key in hot_keys:
            hot.append(key)
        else:
            rest.append(key)
    return overridden + hot + rest


def flag_attributes(
    rc: RunConfig, keys: Iterable[str], sensitive: Collection[str], prefix: str = FLAG_PREFIX
) -> dict[str, str | bool | int | float]:
    """``<prefix><key>.value`` and ``<prefix><key>.source`` for ``keys``, in order
    (``flagmw.flag.`` for the pinned values, ``flagmw.effective.`` for the values in
    effect at run end)."""
    prov = rc.provenance
    out: dict[str, str | bool | int | float] = {}
    for key in keys:
        out[f"{prefix}{key}.value"] = encode_value(rc.get(key), sensitive=key in sensitive)
        out[f"{prefix}{key}.source"] = prov[key].layer.value
    return out


def run_changes(pinned: RunConfig, effective: RunConfig) -> tuple[HotChange, ...]:
    """The hot changes applied during one invocation: those of ``effective`` (the
    RunConfig in effect at its end) that ``pinned`` (the one it started from) does not
    already carry. ``effective`` derives from ``pinned`` (:meth:`RunConfig.with_hot`
    appends), so these are the trailing ones."""
    if effective is pinned:
        return ()
    return effective.changes[len(pinned.changes) :]


def reached_override_ids(
    pinned: RunConfig,
    effective: RunConfig,
    events: Iterable[tuple[str, Mapping[str, Any]]],
) -> list[str]:
    """Every override that reached an invocation, without repeats: those of the pinned
    RunConfig first, then in the order they arrived — through a hot change (a kill
    turning a hot key off, an override expiring back is still listed), a tool refusal or
    a drain (the ``override_id`` of any run event), or deciding a value at the end."""
    ids: dict[str, None] = dict.fromkeys(pinned.override_ids)
    for change in run_changes(pinned, effective):
        if change.provenance.override_id:
            ids[change.provenance.override_id] = None
    for _name, attributes in events:
        override_id = attributes.get("override_id")
        if isinstance(override_id, str) and override_id:
            ids[override_id] = None
    ids.update(dict.fromkeys(effective.override_ids))
    return list(ids)


def config_document(
    rc: RunConfig,
    sensitive: Collection[str],
    user_ids: UserIdPolicy = "keep",
    salt: str = "",
) -> dict[str, Any]:
    """``rc.to_dict()`` with sensitive values (also in hot changes) replaced by
    ``"[redacted]"`` and the context's user id treated by the user-id policy. The
    ``config_hash`` stays the hash of the real values."""
    doc = rc.to_dict()
    values = doc["values"]
    for key in sensitive:
        if key in values:
            values[key] = REDACTED
    for change in doc.get("changes", ()):
        if change.get("key") in sensitive:
            change["old"] = change["new"] = REDACTED
    ctx = doc.get("context", {})
    if "user_id" in ctx:
        uid = apply_user_policy(ctx["user_id"], user_ids, salt)
        if uid is None:
            del ctx["user_id"]
        else:
            ctx["user_id"] = uid
    return doc


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


def capped_json(doc: Mapping[str, Any], order: Sequence[str], max_bytes: int) -> str:
    """``doc`` (a RunConfig document) as compact sorted JSON of at most ``max_bytes``
    UTF-8 bytes.

    When the whole document does not fit, the result is still valid JSON: hot changes
    are left out first, then values (with their provenance) are added in ``order`` while
    they fit, and a ``"truncated"`` member says what was cut::

        "truncated": {"max_bytes": 16384, "omitted_keys": 12, "omitted_changes": 3}

    Only when even the header (context, ids, hashes) does not fit is the text cut,
    ending with ``…[truncated at N bytes]``.
    """
    full = dumps(doc)
    if _size(full) <= max_bytes:
        return full
    values: Mapping[str, Any] = doc.get("values", {})
    prov: Mapping[str, Any] = doc.get("provenance", {})
    kept_values: dict[str, Any] = {}
    kept_prov: dict[str, Any] = {}
    marker = {
        "max_bytes": max_bytes,
        "omitted_keys": len(values),
        "omitted_changes": len(doc.get("changes", ())),
    }
    base = {k: v for k, v in doc.items() if k not in ("values", "provenance", "changes")}
    base.update(values=kept_values, provenance=kept_prov, truncated=marker)
    # The marker holds its largest numbers here, so the estimate only shrinks later.
    size = _size(dumps(base))
    for key in order:
        if key not in values:
            continue
        name = _size(dumps(key)) + 2  # "key": and a comma
        cost = name + _size(dumps(values[key]))
        if key in prov:
            cost += name + _size(dumps(prov[key]))
        if size + cost > max_bytes:
            break
        kept_values[key] = values[key]
        if key in prov:
            kept_prov[key] = prov[key]
        size += cost
    marker["omitted_keys"] = len(values) - len(kept_values)
    text = dumps(base)
    if _size(text) <= max_bytes:
        return text
    tail = f"{ELLIPSIS}[truncated at {max_bytes} bytes]"
    room = max(0, max_bytes - _size(tail))
    return full.encode("utf-8")[:room].decode("utf-8", errors="ignore") + tail


def evaluation_attributes(
    rc: RunConfig,
    key: str,
    value: Any,
    provenance: Provenance,
    *,
    sensitive: bool,
    user_ids: UserIdPolicy,
    salt: str = "",
) -> dict[str, Any]:
    """The attributes of one ``feature_flag.evaluation`` log-based event (semantic
    conventions, names as of v1.44): key, provider, value (redacted when
    ``sensitive``), reason, the exact layer (``flagmw.source``), the variant, the
    snapshot rev as ``feature_flag.version`` and the user id (under ``user_ids``) or
    else the tenant as ``feature_flag.context.id``."""
    attrs: dict[str, Any] = {
        FEATURE_FLAG_KEY: key,
        FEATURE_FLAG_PROVIDER_NAME: PROVIDER_NAME,
        FEATURE_FLAG_RESULT_VALUE: encode_value(value, sensitive=sensitive),
        FEATURE_FLAG_RESULT_REASON: result_reason(provenance, value),
        FLAGMW_SOURCE: provenance.layer.value,
    }
    if provenance.variant is not None:
        attrs[FEATURE_FLAG_RESULT_VARIANT] = provenance.variant
    if rc.snapshot_rev is not None:
        attrs[FEATURE_FLAG_VERSION] = str(rc.snapshot_rev)
    ctx = rc.context
    context_id = apply_user_policy(ctx.user_id, user_ids, salt)
    if context_id is None:
        context_id = ctx.tenant_id
    if context_id is not None:
        attrs[FEATURE_FLAG_CONTEXT_ID] = context_id
    return attrs


def event_value(value: Any) -> str | bool | int | float:
    """A value carried by a run event, as an attribute value (exceptions as
    ``"Type: message"``)."""
    if isinstance(value, BaseException):
        return clip(f"{type(value).__name__}: {value}")
    return encode_value(value)


def error_type(error: BaseException | None) -> str:
    """``error.type`` of an exception: its fully qualified class name (builtins bare);
    ``_OTHER`` when unknown, as the convention prescribes."""
    if error is None:
        return "_OTHER"
    cls = type(error)
    module = cls.__module__
    if module in ("builtins", "__main__"):
        return cls.__qualname__
    return f"{module}.{cls.__qualname__}"
