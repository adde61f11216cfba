"""``flagmw drill``: a game day for kill switches (issue 8 §4).

N worker processes run a real wrapped LangGraph agent in loops against a store; a
separate process (the coordinator) sets a kill, measures how long each worker takes to
know of it and to enforce it, checks that no gated tool starts after enforcement, ends
the kill, and repeats. :mod:`~flagmw.drill.worker` is the worker,
:mod:`~flagmw.drill.coordinator` runs a drill, :mod:`~flagmw.drill.report` summarises it.
"""

from flagmw.drill.coordinator import DrillError, run_drill
from flagmw.drill.report import DrillReport

__all__ = ["DrillError", "DrillReport", "run_drill"]
