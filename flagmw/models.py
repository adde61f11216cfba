"""Compatibility: moved to :mod:`flagmw.langgraph.models` in 0.2 (public names are also
re-exported by :mod:`flagmw`). Kept so imports written for 0.1 keep working."""

from flagmw.langgraph.models import *  # noqa: F403
from flagmw.langgraph.models import __all__ as __all__
