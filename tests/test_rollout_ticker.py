"""The rollout controller on a timer (``flagmw serve --rollout-tick``): a failing
candidate is rolled back by the ticker alone, the rollback reaches the console's
webhooks, a failing tick is counted and retried, and the options are checked."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import snapshot_part
from fastapi.testclient import TestClient
from test_console_webhooks import Receiver

from flagmw import FlagClient, FlagRegistry, SQLiteStore
from flagmw.cli import main
from flagmw.console import create_app
from flagmw.console.webhooks import Webhook
from flagmw.rollout.controller import RolloutController, TickResult
from flagmw.rollout.stages import Rollout
from flagmw.rollout.store import RolloutStore, open_rollout_store
from flagmw.rollout.ticker import RolloutTicker
from flagmw.rollout.versions import AgentVersion


@pytest.fixture
def setup(tmp_path: Path, registry: FlagRegistry) -> Iterator[tuple[SQLiteStore, RolloutStore]]:
    store = SQLiteStore(tmp_path / "flags.db", create=True)
    FlagClient(registry, store).publish(snapshot_part(), author="setup", message="first")
    rs = open_rollout_store(store)
    for version, cap in (("v1.3.2", 8), ("v1.3.3", 6)):
        v = AgentVersion.build(registry, "support-agent", version, {"loop.max_iterations": cap})
        rs.publish_version(v, author="ana", at=time.time())
    yield store, rs
    rs.close()
    store.close()


def _failing_candidate(rs: RolloutStore) -> Rollout:
    """A rollout at 10 % whose candidate failed half of its runs (baseline: none)."""
    ctl = RolloutController(rs)
    r = ctl.start(
        "support-agent", "v1.3.3", "v1.3.2", "10,100", min_runs=10, min_duration=0, actor="ana"
    )
    now = time.time()
    rs.record_outcomes(
        {
            "at": now,
            "rollout": r.name,
            "stage": 10,
            "arm": arm,
            "version": version,
            "tenant": f"t{i}",
            "outcome": "failed" if arm == "candidate" and i % 2 else "completed",
        }
        for arm, version, n in (("candidate", "v1.3.3", 12), ("baseline", "v1.3.2", 40))
        for i in range(n)
    )
    return r


def _wait(pred: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert pred()


def test_the_ticker_rolls_a_failing_candidate_back(
    setup: tuple[SQLiteStore, RolloutStore],
) -> None:
    _store, rs = setup
    r = _failing_candidate(rs)
    seen: list[TickResult] = []
    ticker = RolloutTicker(
        RolloutController(rs), 0.05, on_action=seen.append, actor="controller (test)"
    )
    ticker.start()
    try:
        _wait(lambda: bool(seen))
    finally:
        ticker.stop()
    [result] = seen
    assert (result.rollout, result.action, result.share) == (r.name, "rollback", 0)
    assert "error rate 50.0 % > baseline 0.0 % + 2 points over 12 runs" in result.reason
    assert RolloutController(rs).get(r.name).status == "rolled_back"
    [entry] = [e for e in rs.audit() if e["action"] == "rollout.rollback"]
    assert entry["actor"] == "controller (test)"
    ticks = ticker.ticks
    assert ticks >= 1
    time.sleep(0.2)
    assert ticker.ticks == ticks  # stopped


def test_a_failing_tick_is_counted_and_the_next_one_runs(
    setup: tuple[SQLiteStore, RolloutStore], tmp_path: Path
) -> None:
    _store, rs = setup
    r = _failing_candidate(rs)
    calls = 0
    real = rs.list_rollouts

    def flaky() -> list[dict[str, Any]]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("disk I/O error")
        return real()

    rs.list_rollouts = flaky  # type: ignore[method-assign]
    ticker = RolloutTicker(RolloutController(rs), 60)
    assert ticker.tick_once() == []
    assert (ticker.errors, ticker.ticks) == (1, 0)
    [result] = ticker.tick_once()
    assert (result.rollout, result.action) == (r.name, "rollback")
    assert (ticker.errors, ticker.ticks) == (1, 1)


def test_an_action_report_that_raises_never_stops_the_ticker(
    setup: tuple[SQLiteStore, RolloutStore],
) -> None:
    _store, rs = setup
    r = _failing_candidate(rs)

    def broken(result: TickResult) -> None:
        raise RuntimeError("webhook queue gone")

    ticker = RolloutTicker(RolloutController(rs), 60, on_action=broken)
    [result] = ticker.tick_once()
    assert result.action == "rollback"
    assert ticker.errors == 1
    assert RolloutController(rs).get(r.name).status == "rolled_back"
    with pytest.raises(ValueError, match="positive"):
        RolloutTicker(RolloutController(rs), 0)


def test_the_console_ticks_and_pages_on_a_rollback(
    setup: tuple[SQLiteStore, RolloutStore],
) -> None:
    store, rs = setup
    r = _failing_candidate(rs)
    slack, pager = Receiver(), Receiver()
    try:
        ticker = RolloutTicker(RolloutController(rs), 0.05, actor="controller (serve)")
        app = create_app(
            store,
            webhooks=[
                Webhook("slack", slack.url),
                Webhook("pagerduty", pager.url, "routing-key"),
            ],
            webhook_backoff=0.01,
            rollout_ticker=ticker,
        )
        with TestClient(app):
            [message] = slack.wait_for(1)
            [event] = pager.wait_for(1)
        assert message["text"].startswith(
            f"flagmw: rollout {r.name} ROLLED BACK (share 0 %): error rate 50.0 %"
        )
        assert event["payload"]["severity"] == "error"
        assert event["payload"]["class"] == "rollout.rollback"
        assert event["dedup_key"].endswith(f"rollout-{r.name}-rollback-0")
        assert RolloutController(rs).get(r.name).status == "rolled_back"
    finally:
        slack.close()
        pager.close()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--gates", "quality_gates.yaml"], "--gates applies to --rollout-tick"),
        (["--rollout-tick", "0s"], "--rollout-tick: a duration must be positive"),
        (["--rollout-tick", "2d"], "--rollout-tick must be between 1s and 24h"),
        (["--rollout-tick", "soon"], "--rollout-tick: not a duration: 'soon'"),
    ],
)
def test_serve_checks_its_rollout_options(
    args: list[str], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["serve", *args])
    assert exc.value.code == 2
    assert words in capsys.readouterr().err


def test_one_line_keeps_option_names_and_drops_bullets() -> None:
    from flagmw.cli.errors import one_line

    assert one_line("--rollout-tick: not a duration") == "--rollout-tick: not a duration"
    assert one_line("two problems:\n  - a is bad\n  - b is -1\n") == (
        "two problems:; a is bad; b is -1"
    )
