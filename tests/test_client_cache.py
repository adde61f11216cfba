"""The client's evaluation cache: refreshes never go back (bug 3.4), an override that
starts after this process's clock reaches runs at the next poll after its start (bug
3.5), and a fork() while another thread refreshes leaves the child a working client."""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path
from typing import Any

import pytest
from conftest import T0, FixedClock, snapshot_part
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flagmw import EvaluationContext, FlagClient, FlagRegistry, MemoryStore, SQLiteStore
from flagmw.client.cache import next_change_after
from flagmw.stores.base import StoreState

KILL_KEY = "tools.refund_api.enabled"
CAP = "loop.max_iterations"
ACME = EvaluationContext(tenant_id="acme", user_id="u-1", route="refund-assistant", plan="pro")


def _doc(cap: int | None = None) -> dict[str, Any]:
    doc = snapshot_part()
    if cap is not None:
        doc["routes"]["refund-assistant"]["values"][CAP] = cap
    return doc


class SlowReads(MemoryStore):
    """A MemoryStore whose ``read_state``, in the thread named ``held_thread``, reads the
    state and then waits for ``release`` before returning it: a slow network read that
    finishes after a later, faster one."""

    def __init__(self) -> None:
        super().__init__()
        self.held_thread = ""
        self.release = threading.Event()
        self.holding = threading.Event()

    def read_state(self, now: float) -> StoreState:
        state = super().read_state(now)
        if threading.current_thread().name == self.held_thread:
            self.holding.set()
            self.release.wait(10)
        return state


# -- bug 3.4: monotonic refresh -------------------------------------------------------------


def test_an_older_read_finishing_last_is_not_installed(
    registry: FlagRegistry, clock: FixedClock
) -> None:
    """The race of bug 3.4, made deterministic: a refresh reads rev 2 and stalls; rev 3 is
    published and another refresh runs; the stalled read then finishes. The client served
    3 → 2 before the fix; now the served rev never goes back."""
    store = SlowReads()
    client = FlagClient(registry, store, clock=clock)
    writer = FlagClient(registry, store, clock=clock)
    writer.publish(_doc(2), author="w", message="rev 1")
    client.refresh()
    writer.publish(_doc(3), author="w", message="rev 2")
    served: list[int | None] = []

    def refresh_and_record() -> None:
        client.refresh()
        served.append(client.snapshot_rev)

    store.held_thread = "old-read"
    old = threading.Thread(target=refresh_and_record, name="old-read")
    old.start()
    assert store.holding.wait(10), "the old read started"
    writer.publish(_doc(4), author="w", message="rev 3")  # the store's head is now 3
    new = threading.Thread(target=refresh_and_record, name="new-read")
    new.start()
    new.join(0.3)  # before the fix it completes here, installing rev 3
    store.release.set()
    old.join(10)
    new.join(10)
    assert served == sorted(served), f"served revs went back: {served}"
    assert client.snapshot_rev == 3  # read directly: no poll() repairs it
    assert client.resolve(ACME)[CAP] == 4


def test_a_store_that_returns_an_older_head_is_ignored(
    registry: FlagRegistry, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Whatever a store returns (a lagging replica), a client never installs a head rev
    below one it has seen, and says so in the log."""

    class Lagging(MemoryStore):
        lag: StoreState | None = None

        def read_state(self, now: float) -> StoreState:
            return self.lag if self.lag is not None else super().read_state(now)

    store = Lagging()
    client = FlagClient(registry, store, clock=clock)
    client.publish(_doc(2), author="w", message="rev 1")
    old_state = store.read_state(clock())
    client.publish(_doc(3), author="w", message="rev 2")
    assert client.snapshot_rev == 2
    g = client.generation
    store.lag = StoreState(("lagging", 0), old_state.head, old_state.overrides)
    with caplog.at_level(logging.WARNING, logger="flagmw"):
        assert client.refresh(force=True) is False
    assert client.snapshot_rev == 2
    assert client.generation == g
    assert client.resolve(ACME)[CAP] == 3
    assert "returned head rev 1 after rev 2" in caplog.text
    store.lag = None
    client.publish(_doc(5), author="w", message="rev 3")
    assert client.snapshot_rev == 3


def test_concurrent_refreshes_never_serve_an_older_rev_or_generation(
    make_client: Any, tmp_path: Path
) -> None:
    """Threads polling, refreshing and resolving while another client publishes and sets
    overrides: in every thread the served rev and the generation never decrease."""
    reader = make_client(tmp_path, document=_doc())
    writer = make_client(tmp_path)
    stop = threading.Event()
    errors: list[BaseException] = []
    traces: list[list[tuple[int, int]]] = []

    def work(i: int) -> None:
        trace: list[tuple[int, int]] = []
        traces.append(trace)
        ctx = EvaluationContext(tenant_id="acme", user_id=f"u-{i}")
        try:
            while not stop.is_set():
                if i % 2:
                    reader.refresh(force=True)
                g = reader.poll()
                rc = reader.resolve(ctx)
                assert rc.snapshot_rev is not None
                trace.append((g, rc.snapshot_rev))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for n in range(2, 22):
        writer.publish(_doc(n), author="w", message=f"cap {n}")
        ov = writer.override(CAP, n, reason="r", actor="w", ttl=60)
        writer.end_override(ov.id, actor="w", reason="done")
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert sum(len(t) for t in traces) > 100
    for trace in traces:
        generations = [g for g, _ in trace]
        revs = [r for _, r in trace]
        assert generations == sorted(generations)
        assert revs == sorted(revs)
    assert max(r for t in traces for _, r in t) > 1, "the readers saw the publishes"
    reader.poll()
    assert reader.snapshot_rev == 21


def test_a_head_that_could_not_be_read_is_read_again(
    registry: FlagRegistry, clock: FixedClock
) -> None:
    """The store's state is read but reading the head snapshot itself fails: the client
    keeps serving the last good rev, reports the store unhealthy, and reads the head
    again once the store is back, although nothing in the store changed since."""
    from flagmw.errors import StoreUnavailableError

    class Flaky(MemoryStore):
        broken = False

        def get_snapshot(self, rev: int | None = None, *, overlays: bool = True) -> Any:
            if self.broken:
                raise StoreUnavailableError("flaky", "connection reset")
            return super().get_snapshot(rev, overlays=overlays)

    store = Flaky()
    client = FlagClient(registry, store, clock=clock)
    writer = FlagClient(registry, store, clock=clock)
    writer.publish(_doc(2), author="w", message="rev 1")
    client.poll()
    store.broken = True
    writer.publish(_doc(3), author="w", message="rev 2")
    client.poll()
    assert client.snapshot_rev == 1
    assert client.status().healthy is False
    store.broken = False
    clock.advance(1.0)  # the retry interval
    client.poll()
    assert client.snapshot_rev == 2
    assert client.status().healthy is True
    assert client.resolve(ACME)[CAP] == 3


# -- bug 3.5: overrides that start after this process's clock -----------------------------


def test_an_override_from_a_host_whose_clock_is_ahead_reaches_runs_in_flight(
    registry: FlagRegistry, clock: FixedClock
) -> None:
    """The operator's host is 60 s ahead: its kill starts at T0 + 60 by this process's
    clock. The generation moves at the first poll after the start, so a run in flight
    re-resolves and sees the kill (before the fix only the expiry was tracked)."""
    store = MemoryStore()
    client = FlagClient(registry, store, clock=clock)
    operator_clock = FixedClock(T0 + 60)
    operator = FlagClient(registry, store, clock=operator_clock)
    operator.publish(_doc(), author="o", message="rev 1")
    rc = client.resolve(ACME)
    assert rc[KILL_KEY] is True

    ov = operator.kill(KILL_KEY, reason="incident", actor="oncall", ttl=600)
    assert ov.created_at == T0 + 60
    g = client.poll()  # the kill is read, but has not started here yet
    assert client.is_enabled(KILL_KEY, ACME) is True
    assert client.resolve_hot(rc) is rc

    clock.set(T0 + 59.999)
    assert client.poll() == g
    clock.set(T0 + 60)  # the kill's start passes: nothing in the store changed
    assert client.poll() == g + 1
    assert client.is_enabled(KILL_KEY, ACME) is False
    hot = client.resolve_hot(rc)
    assert hot[KILL_KEY] is False
    assert hot.provenance[KILL_KEY].override_id == ov.id

    clock.set(T0 + 660)  # and its expiry is still a change
    assert client.poll() == g + 2
    assert client.is_enabled(KILL_KEY, ACME) is True


def test_a_start_passing_during_a_store_change_still_moves_the_generation(
    registry: FlagRegistry, clock: FixedClock
) -> None:
    """The kill's start passes and, before the next poll, the store's change token moves
    without any change to what this client serves (a store that signals spuriously, as a
    pub/sub store may): that poll refreshes and must still count the start."""

    class Spurious(MemoryStore):
        bumps = 0

        def change_token(self) -> Any:
            return (super().change_token(), self.bumps)

        def read_state(self, now: float) -> StoreState:
            state = super().read_state(now)
            return StoreState(self.change_token(), state.head, state.overrides)

    store = Spurious()
    client = FlagClient(registry, store, clock=clock)
    operator = FlagClient(registry, store, clock=FixedClock(T0 + 30))
    operator.kill(KILL_KEY, reason="r", actor="o", ttl=600)
    g = client.poll()
    store.bumps += 1
    assert client.poll() == g  # a spurious signal alone is no change
    clock.set(T0 + 31)
    store.bumps += 1
    assert client.poll() == g + 1
    assert client.is_enabled(KILL_KEY) is False


def test_next_change_after_counts_starts_and_expiries(
    registry: FlagRegistry, clock: FixedClock
) -> None:
    client = FlagClient(registry, MemoryStore(), clock=clock)
    a = client.kill(KILL_KEY, reason="r", actor="a", ttl=100)
    late = FixedClock(T0 + 50)
    other = FlagClient(registry, client.store, clock=late)
    b = other.override(CAP, 3, reason="r", actor="a", ttl=100)  # T0+50 .. T0+150
    c = other.override(CAP, 4, reason="r", actor="a", ttl=10, environment="staging")
    d = a.with_changes(id="ov-x", key="no.such.flag", created_at=T0 + 5)
    ovs = [a, b, c, d]
    env = "production"
    assert next_change_after(ovs, T0, env, registry) == T0 + 50  # b starts
    assert next_change_after(ovs, T0 + 50, env, registry) == T0 + 100  # a expires
    assert next_change_after(ovs, T0 + 100, env, registry) == T0 + 150  # b expires
    assert next_change_after(ovs, T0 + 150, env, registry) is None
    assert next_change_after(ovs, T0, "staging", registry) == T0 + 50  # c starts too
    ended = b.with_changes(ended_at=T0 + 1)
    assert next_change_after([ended], T0, env, registry) is None


# -- fork ----------------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_fork_while_another_thread_holds_the_refresh_lock(
    registry: FlagRegistry, tmp_path: Path
) -> None:
    """A refresh holds the client's lock across its read of the store; a fork() at that
    moment must not leave the child a client whose every refresh waits forever."""
    store = SQLiteStore(tmp_path / "flagmw.db", create=True)
    client = FlagClient(registry, store)
    client.publish(_doc(), author="w", message="rev 1")
    client._lock.acquire()  # as a refreshing thread would hold it at the fork
    try:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            signal.alarm(20)  # a child that hangs on the lock dies instead of hanging the test
            code = 1
            try:
                client.override(CAP, 2, reason="child", actor="c", ttl=60)
                code = 0 if client.resolve(ACME)[CAP] == 2 else 3
            finally:
                os._exit(code)
    finally:
        client._lock.release()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    client.poll()
    assert client.resolve(ACME)[CAP] == 2
    client.close()


# -- property: the cache is coherent and its generation tells every change ----------------

_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("advance"), st.floats(0, 120)),
        st.tuples(
            st.just("kill"),
            st.floats(-60, 120),  # the operator's clock skew against this process
            st.floats(1, 300),  # TTL
            st.sampled_from([None, "acme"]),
        ),
        st.tuples(
            st.just("override"),
            st.floats(-60, 120),
            st.floats(1, 300),
            st.integers(1, 50),
        ),
        st.tuples(st.just("end"), st.integers(0, 10)),
        st.tuples(st.just("publish"), st.integers(1, 50)),
    ),
    min_size=1,
    max_size=25,
)


def _answer(client: FlagClient, registry: FlagRegistry) -> dict[str, Any]:
    rc = client.resolve(ACME)
    return {flag.key: (rc[flag.key], rc.provenance[flag.key].override_id) for flag in registry}


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=_OPS)
def test_a_polled_client_answers_as_a_fresh_one_and_its_generation_tells_every_change(
    registry: FlagRegistry, ops: list[tuple[Any, ...]]
) -> None:
    """For any sequence of publishes, kills and overrides set from hosts whose clocks
    disagree with this one, ends, and time passing: after a poll, a long-lived client
    resolves exactly as a new client on the same store would; its generation never goes
    back; and whenever its answer changed since the last poll, its generation moved (so
    a run in flight, which compares generations at step boundaries, sees every change)."""
    clock = FixedClock()
    store = MemoryStore()
    client = FlagClient(registry, store, clock=clock)
    FlagClient(registry, store, clock=clock).publish(_doc(), author="w", message="rev 1")
    last_gen = client.poll()
    last_values = _answer(client, registry)
    for op in ops:
        skewed = FixedClock(clock.now + (op[1] if op[0] in ("kill", "override") else 0))
        operator = FlagClient(registry, store, clock=skewed)
        if op[0] == "advance":
            clock.advance(op[1])
        elif op[0] == "kill":
            operator.kill(KILL_KEY, reason="r", actor="o", ttl=op[2], tenant=op[3])
        elif op[0] == "override":
            operator.override(CAP, op[3], reason="r", actor="o", ttl=op[2])
        elif op[0] == "end":
            live = [o for o in store.list_overrides() if o.ended_at is None]
            if live:
                ov = live[op[1] % len(live)]
                operator.end_override(ov.id, actor="o", reason="done")
        else:
            operator.publish(_doc(op[1]), author="w", message="cap")
        gen = client.poll()
        values = _answer(client, registry)
        fresh = _answer(FlagClient(registry, store, clock=clock), registry)
        assert values == fresh
        assert gen >= last_gen
        if values != last_values:
            assert gen > last_gen, f"{op}: the answer changed but the generation did not"
        last_gen, last_values = gen, values
