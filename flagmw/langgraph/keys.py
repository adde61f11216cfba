"""The keys and type aliases the LangGraph integration shares: checkpoint-metadata
keys of the pin and span reference, ``config["metadata"]`` keys, LangGraph's own
configurable keys the wrapper reads, the resume policies."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Literal

# the merge LangGraph itself applies to an invocation's config (ambient config, the
# reset of an inherited checkpoint coordinate); private in langgraph 1.2
from langgraph.pregel import Pregel

if TYPE_CHECKING:  # pragma: no cover
    pass

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

# langgraph's configurable keys (langgraph/_internal/_constants.py): the task id marks
# a graph running as a subgraph node; the checkpointer a parent lends a subgraph (or
# LangGraph Server passes) travels under the second.
TASK_ID_KEY = "__pregel_task_id"
LENT_CHECKPOINTER_KEY = "__pregel_checkpointer"
RUNTIME_KEY = "__pregel_runtime"

#: stream modes whose payloads carry the RunState and are scrubbed of it
SCRUB_MODES = frozenset({"checkpoints", "debug"})

ResumePolicy = Literal["pinned", "live", "fail_if_changed"]

#: any compiled LangGraph graph
AnyGraph = Pregel[Any, Any, Any, Any]
