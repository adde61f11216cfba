"""Repository-wide pytest hooks.

Tests that need a server (PostgreSQL, Redis) read its URL from ``FLAGMW_TEST_POSTGRES_URL``
/ ``FLAGMW_TEST_REDIS_URL`` and skip with a reason naming the variable when it is unset or
the server cannot be reached. CI sets ``FLAGMW_REQUIRE_SERVERS=1``: then such a skip is
reported as a failure, so a missing server can never pass silently.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

import pytest

_SERVER_MARKERS = ("FLAGMW_TEST_POSTGRES_URL", "FLAGMW_TEST_REDIS_URL")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Generator[Any]:
    outcome = yield
    if os.environ.get("FLAGMW_REQUIRE_SERVERS") != "1":
        return
    report = outcome.get_result()
    if not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = (
        str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
    )
    if any(marker in reason for marker in _SERVER_MARKERS):
        report.outcome = "failed"
        report.longrepr = (
            f"FLAGMW_REQUIRE_SERVERS=1 but a server test was skipped: {reason}. "
            "Start the server (see .ci/run) or unset FLAGMW_REQUIRE_SERVERS."
        )
