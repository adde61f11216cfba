"""FlagmwProvider: flagmw behind OpenFeature's provider interface.

Application code that already reads flags through an OpenFeature client keeps doing so;
the answers come from flagmw's one evaluation path:

* **inside a run wrapped with** :func:`flagmw.wrap` (in a node, tool or model call) the
  provider answers from the run's RunConfig (:func:`flagmw.current`): the value the run
  itself sees, pinned at run start (hot keys as of the last step boundary), whatever
  was published since; the OpenFeature context is not used to re-resolve;
* **outside a run** it resolves live through :meth:`FlagClient.candidate
  <flagmw.client.FlagClient.candidate>` — the evaluation of ``client.value`` — with the
  OpenFeature context mapped by :class:`~flagmw.openfeature.context.ContextMapping`.

Every answer carries the reason of the winning layer, the variant, and ``flag_metadata``
(``version`` = snapshot rev, ``layer``, ``overrideId`` …): see
:mod:`flagmw.openfeature.reasons`. Errors are returned as details with an error code and
the caller's default, never raised. Events come from the client's change counter
(:mod:`flagmw.openfeature.events`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from openfeature.evaluation_context import EvaluationContext as OFContext
from openfeature.exception import ErrorCode, ParseError
from openfeature.flag_evaluation import FlagResolutionDetails, FlagType, FlagValueType, Reason
from openfeature.hook import Hook
from openfeature.provider import AbstractProvider, Metadata

from flagmw.client.client import FlagClient
from flagmw.core.candidate import Candidate, make_candidate
from flagmw.core.context import EvaluationContext
from flagmw.core.provenance import DEFAULT_PROVENANCE, Layer
from flagmw.langgraph.run import current_run
from flagmw.openfeature.context import ContextMapping, to_flagmw_context
from flagmw.openfeature.events import EventWatcher
from flagmw.openfeature.reasons import (
    error_code_for,
    metadata_for,
    reason_for,
    typed_value,
    variant_for,
)

__all__ = ["PROVIDER_NAME", "FlagmwProvider"]

#: ``get_metadata().name``, and OpenTelemetry's ``feature_flag.provider.name``.
PROVIDER_NAME = "flagmw"

T = TypeVar("T")

#: layers whose answer needs no bucketing unit, even with an experiment on the key
_UNIT_FREE = frozenset({Layer.EXPERIMENT, Layer.OVERRIDE})
Metadata_ = Mapping[str, bool | int | float | str]


class FlagmwProvider(AbstractProvider):
    """An OpenFeature provider answering from a :class:`~flagmw.client.FlagClient`.

    Args:
        client: the application's flag client (the provider never creates a store).
        context: how an OpenFeature context maps onto a flagmw one (the targeting key
            is the ``user_id`` by default).
        variants: flag key → variant name → value: names for a flag's values (flagd's
            ``variants``), reported as the variant when no experiment variant applies.
        flag_metadata: flag key → metadata of the flag's own (scalars), merged under
            flagmw's keys into every answer's ``flag_metadata``.
        hooks: the provider's hooks (``get_provider_hooks()``).
        answer_from_run: answer from the current wrapped run's RunConfig (default);
            False always resolves live.
        close_client: close the client at ``shutdown()`` (default False: the client is
            the application's).

    Example::

        from openfeature import api
        from flagmw.openfeature import FlagmwProvider

        api.set_provider_and_wait(FlagmwProvider(client))
        api.get_client().get_boolean_value("tools.refund_api.enabled", False,
                                           EvaluationContext("u-17", {"tenant": "acme"}))
    """

    def __init__(
        self,
        client: FlagClient,
        *,
        context: ContextMapping | None = None,
        variants: Mapping[str, Mapping[str, Any]] | None = None,
        flag_metadata: Mapping[str, Metadata_] | None = None,
        hooks: Sequence[Hook] = (),
        answer_from_run: bool = True,
        close_client: bool = False,
    ) -> None:
        super().__init__()
        self.client = client
        self.context_mapping = context or ContextMapping()
        self._names: dict[str, dict[str, str]] = {
            key: {
                make_candidate(key, value, DEFAULT_PROVENANCE).fragment: name
                for name, value in named.items()
            }
            for key, named in (variants or {}).items()
        }
        self._flag_metadata = {k: dict(v) for k, v in (flag_metadata or {}).items()}
        self._hooks = list(hooks)
        self._from_run = answer_from_run
        self._close_client = close_client
        self.events = EventWatcher(client, self.emit)

    # -- lifecycle -------------------------------------------------------------------------

    def get_metadata(self) -> Metadata:
        """``Metadata(name="flagmw")``."""
        return Metadata(name=PROVIDER_NAME)

    def get_provider_hooks(self) -> list[Hook]:
        """The hooks given at construction."""
        return list(self._hooks)

    def initialize(self, evaluation_context: OFContext) -> None:
        """Read the store once and take the client's state as the baseline of the
        events; the SDK reports READY when this returns (and ``PROVIDER_STALE`` follows
        at the first evaluation or :meth:`poll` when the store is unreachable).

        Raises:
            ParseError: the store's head rev does not fit the application's registry
                (the SDK reports ERROR; evaluations go on from the rev served, and
                ``PROVIDER_READY`` follows once a fitting rev is published).
        """
        self.client.refresh(force=True)
        if self.events.baseline() == "error":
            status = self.client.status()
            raise ParseError(
                f"{status.last_error or 'the head rev was rejected'} "
                f"({len(status.rejected_problems)} problems)"
            )

    def shutdown(self) -> None:
        """Close the client when ``close_client`` was given."""
        if self._close_client:
            self.client.close()

    def poll(self) -> int:
        """Look for changes now and emit their events (``client.poll()`` then the
        event check); returns the client's generation. Evaluations do this by
        themselves; call it from a loop of your own to get events without evaluating."""
        gen = self.client.poll()
        self.events.check()
        return gen

    # -- resolution ------------------------------------------------------------------------

    def _resolve(
        self, flag_type: FlagType, flag_key: str, default: T, of_ctx: OFContext | None
    ) -> FlagResolutionDetails[T]:
        try:
            return self._answer(flag_type, flag_key, default, of_ctx)
        except Exception as exc:
            return FlagResolutionDetails(
                value=default,
                error_code=error_code_for(exc),
                error_message=str(exc) or type(exc).__name__,
                reason=Reason.ERROR,
            )

    def _answer(
        self, flag_type: FlagType, key: str, default: T, of_ctx: OFContext | None
    ) -> FlagResolutionDetails[T]:
        run = current_run(optional=True) if self._from_run else None
        rc = run.rc if run is not None and run.client in (None, self.client) else None
        config_hash: str | None = None
        stale = False
        if rc is not None and key in rc:
            cand: Candidate = rc.candidates[key]
            ctx = rc.context
            rev = rc.snapshot_rev
            config_hash = rc.config_hash
        else:
            client = self.client
            ctx = (
                to_flagmw_context(of_ctx.targeting_key, of_ctx.attributes, self.context_mapping)
                if of_ctx is not None
                else EvaluationContext()
            )
            cand = client.candidate(key, ctx)
            self.events.check()
            if cand.provenance.layer not in _UNIT_FREE:
                unit = client.missing_unit(key, ctx)
                if unit is not None:
                    return FlagResolutionDetails(
                        value=default,
                        error_code=ErrorCode.TARGETING_KEY_MISSING,
                        error_message=f"an experiment on {key} buckets by {unit}, which "
                        "the context lacks (give a targeting key or the attribute)",
                        reason=Reason.ERROR,
                    )
            rev = client.snapshot_rev
            stale = client.serving_stale
        value = typed_value(flag_type, cand.value)
        prov = cand.provenance
        return FlagResolutionDetails(
            value=value,
            reason=reason_for(prov, cand.value, stale=stale),
            variant=variant_for(prov, cand.fragment, self._names.get(key)),
            flag_metadata=metadata_for(
                prov,
                rev,
                context_id=getattr(ctx, self.context_mapping.targeting_key),
                config_hash=config_hash,
                defined=self._flag_metadata.get(key),
            ),
        )

    def resolve_boolean_details(
        self, flag_key: str, default_value: bool, evaluation_context: OFContext | None = None
    ) -> FlagResolutionDetails[bool]:
        """A ``bool`` flag (``TYPE_MISMATCH`` for any other)."""
        return self._resolve(FlagType.BOOLEAN, flag_key, default_value, evaluation_context)

    def resolve_string_details(
        self, flag_key: str, default_value: str, evaluation_context: OFContext | None = None
    ) -> FlagResolutionDetails[str]:
        """A ``string`` or ``enum`` flag."""
        return self._resolve(FlagType.STRING, flag_key, default_value, evaluation_context)

    def resolve_integer_details(
        self, flag_key: str, default_value: int, evaluation_context: OFContext | None = None
    ) -> FlagResolutionDetails[int]:
        """An ``int`` flag."""
        return self._resolve(FlagType.INTEGER, flag_key, default_value, evaluation_context)

    def resolve_float_details(
        self, flag_key: str, default_value: float, evaluation_context: OFContext | None = None
    ) -> FlagResolutionDetails[float]:
        """A ``float`` flag (an ``int`` flag's value widened)."""
        return self._resolve(FlagType.FLOAT, flag_key, default_value, evaluation_context)

    def resolve_object_details(
        self,
        flag_key: str,
        default_value: Sequence[FlagValueType] | Mapping[str, FlagValueType],
        evaluation_context: OFContext | None = None,
    ) -> FlagResolutionDetails[Sequence[FlagValueType] | Mapping[str, FlagValueType]]:
        """A ``json`` flag whose value is a mapping or a list (a copy)."""
        return self._resolve(FlagType.OBJECT, flag_key, default_value, evaluation_context)

    # The async variants: resolution never does I/O when nothing changed (and a
    # refresh is one short store read), so they share the sync implementation; the
    # run's context (flagmw.current) is visible to them as to the sync ones.

    async def resolve_boolean_details_async(
        self, flag_key: str, default_value: bool, evaluation_context: OFContext | None = None
    ) -> FlagResolutionDetails[bool]:
        """:meth:`resolve_boolean_details`, for ``await``."""
        return self._resolve(FlagType.BOOLEAN, flag_key, default_value, evaluation_context)

    async def resolve_string_details_async(
        self, flag_key: str, default_value: str, evaluation_context: OFContext | None = None
    ) -> FlagResolutionDetails[str]:
        """:meth:`resolve_string_details`, for ``await``."""
        return self._resolve(FlagType.STRING, flag_key, default_value, evaluation_context)

    async def resolve_integer_details_async(
        self, flag_key: str, default_value: int, evaluation_context: OFContext | None = None
    ) -> FlagResolutionDetails[int]:
        """:meth:`resolve_integer_details`, for ``await``."""
        return self._resolve(FlagType.INTEGER, flag_key, default_value, evaluation_context)

    async def resolve_float_details_async(
        self, flag_key: str, default_value: float, evaluation_context: OFContext | None = None
    ) -> FlagResolutionDetails[float]:
        """:meth:`resolve_float_details`, for ``await``."""
        return self._resolve(FlagType.FLOAT, flag_key, default_value, evaluation_context)

    async def resolve_object_details_async(
        self,
        flag_key: str,
        default_value: Sequence[FlagValueType] | Mapping[str, FlagValueType],
        evaluation_context: OFContext | None = None,
    ) -> FlagResolutionDetails[Sequence[FlagValueType] | Mapping[str, FlagValueType]]:
        """:meth:`resolve_object_details`, for ``await``."""
        return self._resolve(FlagType.OBJECT, flag_key, default_value, evaluation_context)

    def __repr__(self) -> str:
        return f"FlagmwProvider({self.client!r})"
