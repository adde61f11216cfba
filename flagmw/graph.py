"""Compatibility: moved to :mod:`flagmw.langgraph.wrap` in 0.2 (public names are also
re-exported by :mod:`flagmw`). Kept so imports written for 0.1 keep working."""

from flagmw.langgraph.wrap import *  # noqa: F403
from flagmw.langgraph.wrap import __all__ as __all__
