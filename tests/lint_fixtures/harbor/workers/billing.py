"""Nightly refund reconciliation: a separate worker that grew its own switches."""

import os as _os
from os import environ, getenv

_PREFIX = "FF_"
REFUNDS_SWITCH = "REFUND_TOOL_ENABLED"


def refunds_allowed() -> bool:
    return environ.get(REFUNDS_SWITCH, "true") == "true"


def model_for_batch() -> str:
    return getenv(f"{_PREFIX}MODEL_PRIMARY", "gpt-4o-mini")


def reflection_on() -> bool:
    return "USE_REFLECTION" in _os.environ


def worker_count() -> int:
    return int(_os.environ.get("BILLING_WORKERS", "4"))


def reconcile(environ: dict[str, str]) -> bool:
    # `environ` here is a parameter, not os.environ.
    return environ.get("ENABLE_RECONCILE", "0") == "1"
