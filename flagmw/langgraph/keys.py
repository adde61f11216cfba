"""The keys and type aliases the LangGraph integration shares: checkpoint-metadata
keys of the pin and span reference, ``config["metadata"]`` keys, LangGraph's own
configurable keys the wrapper reads, the resume policies."""

from __future__ import annotations

import logging
from typing import Any, Literal

from langgraph.pregel import Pregel

log = logging.getLogger("flagmw")


#: Checkpoint metadata key of the pinned RunConfig (a JSON string, see :func:`encode_pin`):
#: on the run's pin checkpoint, in the thread's :data:`PIN_NAMESPACE` (0.1 wrote it on the
#: first root checkpoint of the run; still read there).
PIN_KEY = "flagmw.pin"
#: The ``format`` tag of the stored pin (``"flagmw.pin/1"``: 0.1, without digest).
PIN_FORMAT = "flagmw.pin/2"
#: The checkpoint namespace of a thread that holds its runs' pins, one checkpoint per
#: pinned run (see :mod:`flagmw.langgraph.pin`).
PIN_NAMESPACE = "flagmw.pin"
#: Checkpoint metadata key on every root checkpoint of a wrapped run: ``"<pin id>"`` or
#: ``"<pin id> <span reference>"`` — where the run's pin is (O(1) on resume).
REF_KEY = "flagmw.ref"
#: Checkpoint metadata key of the trace writer's span reference: on the first
#: checkpoint of every invocation (so a resume can link to the span it continues).
SPAN_KEY = "flagmw.span"
#: ``config["metadata"]`` keys the wrapper sets, so LangSmith / OpenInference spans of
#: the graph carry the run's snapshot rev and config hash.
SNAPSHOT_REV_KEY = "flagmw.snapshot_rev"
CONFIG_HASH_KEY = "flagmw.config_hash"

#: The langgraph versions whose private configurable keys the wrapper reads.
SUPPORTED_LANGGRAPH = "langgraph>=1.2.22,<1.3"

# LangGraph's own configurable keys, which have no public accessor: the task id marks a
# graph running as a subgraph node (or invoked inside a node); the checkpointer a
# parent lends a subgraph (or LangGraph Server passes) travels under the second; the
# parent's Runtime (whose RunControl a nested run keeps honouring) under the third.
# The one import of langgraph internals in flagmw; tests/test_graph_api.py checks that
# LangGraph still puts them where the wrapper reads them.
try:
    from langgraph._internal import _constants as _lg

    TASK_ID_KEY: str = _lg.CONFIG_KEY_TASK_ID
    LENT_CHECKPOINTER_KEY: str = _lg.CONFIG_KEY_CHECKPOINTER
    RUNTIME_KEY: str = _lg.CONFIG_KEY_RUNTIME
except (ImportError, AttributeError) as exc:  # pragma: no cover - upstream changed
    raise ImportError(
        f"flagmw.wrap supports {SUPPORTED_LANGGRAPH}: this langgraph no longer provides "
        f"langgraph._internal._constants.CONFIG_KEY_TASK_ID / CONFIG_KEY_CHECKPOINTER / "
        f"CONFIG_KEY_RUNTIME ({exc}); install a supported version"
    ) from exc

#: stream modes whose payloads carry the RunState and are scrubbed of it
SCRUB_MODES = frozenset({"checkpoints", "debug"})

ResumePolicy = Literal["pinned", "live", "fail_if_changed"]

#: any compiled LangGraph graph
AnyGraph = Pregel[Any, Any, Any, Any]
