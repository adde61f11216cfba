"""Settings read once when a worker process boots (the anti-pattern flagmw replaces)."""

import os

DATABASE_URL = os.environ["DATABASE_URL"]
LOG_LEVEL = os.getenv("LOG_LEVEL", "INFO")
HOME = os.environ.get("HOME", "/")

# Read at import: a worker pool keeps this value for hours after the chart changes.
REFUND_TOOL_ENABLED = os.environ.get("REFUND_TOOL_ENABLED", "true").lower() == "true"
USE_REFLECTION = os.getenv("USE_REFLECTION") == "1"  # flagmw: noqa FM002
FALLBACK_LADDER_FLAG = os.environ.get("FALLBACK_LADDER_FLAG", "gpt-4o-mini")
DEBUG_TOOLS_ENABLED = os.getenv("DEBUG_TOOLS_ENABLED") == "1"  # flagmw: noqa  (local only)
