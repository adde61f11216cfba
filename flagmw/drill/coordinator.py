"""Running a drill: start the workers, kill, measure, end the kill, repeat.

The coordinator is a process of its own (the operator's): it sets each kill through a
:class:`~flagmw.client.FlagClient` on the same store as the workers, with the reason
``"flagmw drill"`` and a 5-minute TTL (a drill that crashes cleans itself up), ends it as
soon as every worker enforced it, and always ends a live drill kill on the way out.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import subprocess
import sys
import threading
import time
from typing import IO, Any

from flagmw.drill.report import DrillReport, Repetition
from flagmw.drill.worker import STEP_SAMPLE

__all__ = ["DrillError", "run_drill"]

REASON = "flagmw drill"


class DrillError(Exception):
    """The drill cannot run (missing store, unknown flag, a worker that died)."""


class _Worker:
    def __init__(self, index: int, proc: subprocess.Popen[str]) -> None:
        self.index = index
        self.proc = proc
        self.events: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        out: IO[str] | None = self.proc.stdout
        assert out is not None
        for line in out:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            with self.lock:
                self.events.append(ev)

    def first(self, ev: str, after: float) -> float | None:
        with self.lock:
            for e in self.events:
                if e["ev"] == ev and e.get("t", after) >= after:
                    return float(e.get("t", after))
        return None

    def count(self, ev: str, start: float, end: float) -> int:
        with self.lock:
            return sum(1 for e in self.events if e["ev"] == ev and start < e["t"] < end)

    def times(self, ev: str) -> list[float]:
        with self.lock:
            return [float(e["t"]) for e in self.events if e["ev"] == ev]


def _wait(pred: Any, timeout: float, what: str, workers: list[_Worker]) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        for w in workers:
            if w.proc.poll() is not None:
                raise DrillError(f"worker {w.index} exited ({w.proc.returncode}) while {what}")
        if time.monotonic() > deadline:
            raise DrillError(f"timed out after {timeout:g} s while {what}")
        time.sleep(0.001)


def run_drill(
    store: str,
    *,
    workers: int = 2,
    repetitions: int = 5,
    key: str = "tools.refund_api.enabled",
    tool_latency: float = 0.001,
    settle: float = 0.3,
    timeout: float = 30.0,
    actor: str = "flagmw drill",
) -> DrillReport:
    """Run a drill against ``store`` (a store spec as for ``--store``; it must exist).

    Args:
        store: the store, e.g. ``/srv/flagmw.db``, ``postgresql://…``, ``redis://…``.
        workers: worker processes.
        repetitions: kills per drill.
        key: a hot bool flag of the store's registry gating the workers' tool.
        tool_latency: seconds each tool call takes (the step spacing follows).
        settle: seconds of normal traffic before each kill.
        timeout: seconds to wait for any one thing before giving up.
        actor: the audited actor of the drill's kills.

    Returns:
        the :class:`DrillReport`.

    Raises:
        DrillError: the store is missing or has no snapshot, ``key`` is not a hot bool
            flag of its registry, or a worker died or stalled.
    """
    from flagmw.cli.session import stored_registry
    from flagmw.client.client import FlagClient
    from flagmw.core.flag_spec import FlagType
    from flagmw.errors import FlagmwError
    from flagmw.stores.url import open_store

    try:
        st = open_store(store)
    except (FlagmwError, ValueError) as exc:
        raise DrillError(str(exc)) from None
    registry, _ = stored_registry(st)
    if registry is None:
        st.close()
        raise DrillError(f"{st.name} has no snapshot: publish one first")
    flag = registry.get(key)
    if flag is None or flag.type is not FlagType.BOOL or key not in registry.hot_keys:
        st.close()
        raise DrillError(f"{key} is not a hot bool flag of {st.name}'s registry (pass --key)")
    client = FlagClient(registry, st)
    procs: list[_Worker] = []
    live: str | None = None
    try:
        for i in range(workers):
            p = subprocess.Popen(
                [sys.executable, "-m", "flagmw.drill.worker", store, key, str(tool_latency)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            procs.append(_Worker(i, p))
        _wait(
            lambda: all(w.first("ready", 0.0) is not None for w in procs),
            timeout,
            "starting the workers",
            procs,
        )
        reps: list[Repetition] = []
        for _ in range(repetitions):
            time.sleep(settle)
            t_call = time.monotonic()
            ov = client.kill(key, reason=REASON, actor=actor, ttl="5m")
            live = ov.id
            t_commit = time.monotonic()
            _wait(
                lambda t=t_call: all(w.first("refused", t) is not None for w in procs),
                timeout,
                "waiting for every worker to enforce the kill",
                procs,
            )
            t_end_call = time.monotonic()
            client.unkill(ov.id, reason=f"{REASON}: repetition done", actor=actor)
            live = None
            _wait(
                lambda t=t_end_call: all(w.first("tool", t) is not None for w in procs),
                timeout,
                "waiting for every worker to run the tool again",
                procs,
            )
            per: list[dict[str, float | int]] = []
            for w in procs:
                knows = w.first("knows", t_call)
                enforced = w.first("refused", t_call)
                assert enforced is not None
                per.append(
                    {
                        "knows_ms": max(0.0, ((knows or enforced) - t_commit) * 1000),
                        "enforced_ms": max(0.0, (enforced - t_commit) * 1000),
                        "after_enforcement": w.count("tool", enforced, t_end_call),
                    }
                )
            reps.append(Repetition((t_commit - t_call) * 1000, per))
        spacing = []
        for w in procs:
            steps = w.times("step")
            spacing += [(b - a) / STEP_SAMPLE * 1000 for a, b in itertools.pairwise(steps)]
        return DrillReport(st.name, workers, tool_latency, reps, spacing)
    finally:
        if live is not None:
            with contextlib.suppress(FlagmwError):
                client.unkill(live, reason=f"{REASON}: cleaning up", actor=actor)
        for w in procs:
            if w.proc.stdin is not None:
                w.proc.stdin.close()
        for w in procs:
            try:
                w.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                w.proc.kill()
                w.proc.wait(timeout=10)
        client.close()
