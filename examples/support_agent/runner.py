"""The agent runner of ``flagmw demo``: workers (a flag client, a checkpointer
connection and the wrapped support agent each), the observer that records every
invocation, the backend whose hook lets a step act while a run is inside
``kb_search``, and :class:`Runner`, the plumbing the story steps share (ask, invoke,
print a run, check an expectation).
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from langchain_core.messages import BaseMessage, HumanMessage
from langgraph.checkpoint.sqlite import SqliteSaver
from rich.console import Console
from rich.markup import escape

from flagmw.client.client import FlagClient

# flagmw.examples is installed from examples/ (a package-dir mapping mypy cannot follow)
from flagmw.examples.support_agent.agent import (  # type: ignore[import-not-found,unused-ignore]
    ROUTES,
    InMemoryBackend,
    build_graph,
    load_registry,
    support_policy,
)
from flagmw.examples.support_agent.output import answer, offered, short, trajectory  # type: ignore[import-not-found,unused-ignore]
from flagmw.examples.support_agent.steps import DEMO_STEPS
from flagmw.langgraph.drain import RunDrained
from flagmw.langgraph.run import Outcome, RunState, current_run
from flagmw.langgraph.wrap import wrap
from flagmw.stores.sqlite import SQLiteStore
from flagmw.testing.scripted import ScriptedChatModel, ScriptStep

__all__ = [
    "KILL_KEY",
    "KILL_REASON",
    "KILL_TTL_SECONDS",
    "ROUTE",
    "Backend",
    "DemoFailure",
    "Invocation",
    "Recorder",
    "Row",
    "Runner",
    "Worker",
    "expect",
    "flagmw_command",
]

#: The kill the second process issues (step 6), as on-call would type it.
KILL_KEY = "tools.refund_api.enabled"
KILL_REASON = "CRM webhook returns 500"
KILL_TTL_SECONDS = 3
ROUTE = "refund-assistant"


class DemoFailure(Exception):
    """A step of the demo did not behave as described (the message names it)."""


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise DemoFailure(message)


# -- what the demo observes ---------------------------------------------------------------


class Recorder:
    """A :class:`~flagmw.run.RunObserver`: keeps the RunState and outcome of every
    invocation, as the wrapper reports them."""

    def __init__(self) -> None:
        self.ended: list[tuple[RunState, Outcome, BaseException | None]] = []

    def run_started(self, run: RunState) -> None:
        """Nothing to do at start: the RunState is read when the invocation ends."""

    def activate(self, run: RunState) -> contextlib.AbstractContextManager[Any]:
        """No context to enter."""
        return contextlib.nullcontext()

    def run_event(self, run: RunState, name: str, attributes: Mapping[str, Any]) -> None:
        """Events are read from ``run.events`` when the invocation ends."""

    def run_ended(self, run: RunState, outcome: Outcome, error: BaseException | None) -> None:
        """Keep the invocation."""
        self.ended.append((run, outcome, error))


@dataclass
class Invocation:
    run: RunState
    outcome: Outcome
    result: Any = None


@dataclass
class Row:
    """One run (a thread's turn) as the summary table shows it."""

    tenant: str
    thread: str
    invocations: list[Invocation] = field(default_factory=list)
    offered: list[list[str]] = field(default_factory=list)
    outcome: str = ""

    @property
    def first(self) -> RunState:
        return self.invocations[0].run

    @property
    def last(self) -> RunState:
        return self.invocations[-1].run

    def events(self, name: str) -> list[dict[str, Any]]:
        return [a for inv in self.invocations for n, a in inv.run.events if n == name]

    def routes(self) -> list[str]:
        return list(dict.fromkeys(a["route"] for a in self.events("model_route")))


@dataclass
class Worker:
    """One agent worker: its own flag client, checkpointer connection and graph."""

    client: FlagClient
    conn: sqlite3.Connection
    graph: Any

    def close(self) -> None:
        self.conn.close()
        self.client.close()


class Backend:
    """The demo's backend (the example's in-memory one): runs a hook while a chosen
    thread is inside ``kb_search`` — the step boundary the demo controls."""

    def __init__(self) -> None:
        self.inner = InMemoryBackend()
        self.hooks: dict[str, Callable[[RunState], None]] = {}

    @property
    def refunds(self) -> list[tuple[str, float]]:
        return cast(list[tuple[str, float]], self.inner.refunds)

    def search(self, query: str, index: str) -> str:
        run = current_run(optional=True)
        thread = run.thread_id if run is not None else None
        hook = self.hooks.pop(thread, None) if thread is not None else None
        if hook is not None and run is not None:
            hook(run)
        return str(self.inner.search(query, index))

    def refund(self, order_id: str, amount: float) -> str:
        return str(self.inner.refund(order_id, amount))

    def escalate(self, reason: str) -> str:
        return str(self.inner.escalate(reason))


class Runner:
    """What every step of the demo shares: the working folder and console, the
    registry, the scripted models, the workers, the runs so far (:attr:`rows`) and the
    ops client that publishes and kills."""

    def __init__(self, workdir: Path, console: Console) -> None:
        self.wd = workdir
        self.out = console
        self.db = workdir / "flagmw.db"
        self.checkpoints = workdir / "checkpoints.db"
        self.flags = workdir / "flags.yaml"
        self.registry = load_registry()
        self.recorder = Recorder()
        self.backend = Backend()
        self.offered: dict[str, list[list[str]]] = {}
        self.models = {r: ScriptedChatModel(script=self._policy(), label=r) for r in ROUTES}
        self.rows: list[Row] = []
        self.workers: list[Worker] = []
        self.step_no = 0
        self.ops: FlagClient | None = None

    # -- plumbing ---------------------------------------------------------------------------

    def _policy(self) -> Any:
        offered = self.offered

        def policy(messages: Sequence[BaseMessage], bound: list[str]) -> ScriptStep:
            # record what the model was offered in this call (the routed model already
            # dropped the tools whose gate is off in the run)
            run = current_run(optional=True)
            if run is not None and run.thread_id is not None:
                offered.setdefault(run.thread_id, []).append(list(bound))
            return cast(ScriptStep, support_policy(messages, bound))

        return policy

    def _worker(self) -> Worker:
        client = FlagClient(self.registry, SQLiteStore(self.db))
        conn = sqlite3.connect(self.checkpoints, check_same_thread=False)
        graph = wrap(
            build_graph(checkpointer=SqliteSaver(conn), models=self.models, backend=self.backend),
            client,
            observers=[self.recorder],
        )
        worker = Worker(client, conn, graph)
        self.workers.append(worker)
        return worker

    @staticmethod
    def _config(thread: str, tenant: str, user: str, plan: str) -> dict[str, Any]:
        return {
            "configurable": {
                "thread_id": thread,
                "tenant_id": tenant,
                "user_id": user,
                "plan": plan,
                "route": ROUTE,
            }
        }

    def _invoke(self, worker: Worker, row: Row, payload: Any, config: dict[str, Any]) -> Any:
        before = len(self.recorder.ended)
        try:
            result = worker.graph.invoke(payload, config)
        except RunDrained as exc:
            result = exc
        ended = [e for e in self.recorder.ended[before:] if e[0].thread_id == row.thread]
        expect(bool(ended), f"run {row.thread}: the wrapper reported no run to its observers")
        run, outcome, _ = ended[-1]
        row.invocations.append(Invocation(run, outcome, result))
        row.offered = self.offered.get(row.thread, [])
        return result

    def _step(self, title: str) -> None:
        self.step_no += 1
        self.out.print()
        self.out.rule(f"[bold]Step {self.step_no}. {title}", align="left")
        self.out.print(f"[dim]{escape(DEMO_STEPS[self.step_no - 1])}[/]")

    def _ok(self, text: str) -> None:
        self.out.print(f"[bold green]ok[/] {text}")

    def _show_run(self, row: Row, messages: Sequence[BaseMessage]) -> None:
        rc = row.last.rc
        self.out.print(
            f"  [cyan]{row.tenant}[/] thread [cyan]{row.thread}[/]  pinned rev "
            f"{row.last.pinned.snapshot_rev}  config {short(row.last.pinned.config_hash)}  "
            f"model {', '.join(row.routes()) or '-'}  "
            f"prompt {rc.get('prompt.style')}"
        )
        self.out.print(f"  tools offered: {escape(offered(row.offered))}")
        self.out.print(f"  trajectory:    {escape(trajectory(messages)) or '-'}")
        said = answer(messages)
        if said:
            self.out.print(f"  agent: [italic]{escape(said)}[/]", soft_wrap=False)

    def _ask(
        self,
        worker: Worker,
        *,
        thread: str,
        tenant: str,
        user: str,
        plan: str,
        text: str,
    ) -> tuple[Row, Any]:
        row = Row(tenant, thread)
        self.rows.append(row)
        self.out.print(f"\n  [bold]{tenant}[/] customer ({user}): [italic]{escape(text)}[/]")
        result = self._invoke(
            worker,
            row,
            {"messages": [HumanMessage(text)]},
            self._config(thread, tenant, user, plan),
        )
        return row, result

    @property
    def _ops(self) -> FlagClient:
        assert self.ops is not None
        return self.ops

    def close(self) -> None:
        for w in self.workers:
            with contextlib.suppress(Exception):
                w.close()
        if self.ops is not None:
            with contextlib.suppress(Exception):
                self.ops.close()


def flagmw_command() -> list[str]:
    """The ``flagmw`` console script of this Python environment (or ``python -m
    flagmw.cli`` when the script is not installed next to the interpreter)."""
    script = Path(sys.executable).with_name("flagmw")
    if script.exists():
        return [str(script)]
    found = shutil.which("flagmw")
    return [found] if found else [sys.executable, "-m", "flagmw.cli"]
