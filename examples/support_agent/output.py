"""What ``flagmw demo`` prints: short hashes and clock times, a run's trajectory,
answer and the tools offered to its model, and the summary tables (runs, audit log).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from rich.table import Table

from flagmw.langgraph.run import RunState

if TYPE_CHECKING:  # pragma: no cover
    from flagmw.examples.support_agent.runner import Row  # type: ignore[import-not-found,unused-ignore]

__all__ = [
    "answer",
    "audit_table",
    "clock",
    "offered",
    "routes",
    "runs_table",
    "short",
    "trajectory",
    "turn",
]


def short(config_hash: str) -> str:
    return config_hash.removeprefix("sha256:")[:12]


def clock(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%H:%M:%S")


def turn(messages: Sequence[BaseMessage]) -> list[BaseMessage]:
    for i in range(len(messages) - 1, -1, -1):
        if isinstance(messages[i], HumanMessage):
            return list(messages[i + 1 :])
    return list(messages)


def trajectory(messages: Sequence[BaseMessage]) -> str:
    """``kb_search -> refund (refused) -> escalate -> answer`` for the last turn."""
    steps: list[str] = []
    for m in turn(messages):
        if isinstance(m, ToolMessage):
            steps.append(f"{m.name} (error)" if m.status == "error" else str(m.name))
        elif isinstance(m, AIMessage) and not m.tool_calls and m.content:
            steps.append("answer")
    return " -> ".join(steps)


def answer(messages: Sequence[BaseMessage]) -> str:
    for m in reversed(messages):
        if isinstance(m, AIMessage) and not m.tool_calls and m.content:
            return str(m.content)
    return ""


def offered(calls: Sequence[Sequence[str]]) -> str:
    """Tools offered per model call, collapsed: ``a, b, c => a, c`` when it changed."""
    shown: list[str] = []
    for names in calls:
        text = ", ".join(names) if names else "(none)"
        if not shown or shown[-1] != text:
            shown.append(text)
    return " => ".join(shown) if shown else "-"


def routes(run: RunState) -> list[str]:
    return list(dict.fromkeys(a["route"] for n, a in run.events if n == "model_route"))


def runs_table(rows: Iterable[Row]) -> Table:
    """One line per run: tenant, thread, pinned rev, model route, tools offered,
    refusals, outcome and config hash."""
    table = Table(title="Runs")
    for col in (
        "tenant",
        "thread",
        "rev",
        "model",
        "tools offered",
        "refusals",
        "outcome",
        "config",
    ):
        table.add_column(col, overflow="fold")
    for row in rows:
        refusals = "; ".join(
            f"{e['tool']}: {e['key']} ({e.get('reason') or '-'})"
            for e in row.events("tool_refused")
        )
        table.add_row(
            row.tenant,
            row.thread,
            str(row.first.pinned.snapshot_rev),
            ", ".join(row.routes()) or "-",
            offered(row.offered),
            refusals or "-",
            row.outcome,
            short(row.first.pinned.config_hash),
        )
    return table


def audit_table(entries: Sequence[Any]) -> Table:
    """The audit log entries (oldest first): seq, time, action, actor, target, reason."""
    audit = Table(title="flagmw audit (oldest first)")
    for col in ("#", "time", "action", "actor", "target", "reason"):
        audit.add_column(col, overflow="fold")
    for e in entries:
        audit.add_row(str(e.seq), clock(e.at), e.action, e.actor, e.target, e.reason)
    return audit
