"""``flagmw demo rollout``: a support agent's v1.3.2 → v1.3.3 rollout with scripted traffic.

The story (issue 12 §6), on a SQLite store and a SQLite checkpointer in a working folder:

1. both versions are published from ``agents/support-agent/v1.3.x.yaml`` and a rollout
   starts at 1 % of tenants (stages 1, 5, 25, 50, 100);
2. at 1 % and 5 % the candidate is as good as the baseline: each stage lasts its minimum
   duration (the demo's clock moves 30 minutes per stage), the controller advances;
3. at 25 % a run of a candidate tenant waits for human approval, then the candidate's
   error rate spikes (scripted: its refund call fails one run in three); the next tick
   rolls back automatically and the audit log says why, with the numbers;
4. new runs of that tenant get the baseline at once, while the waiting run resumes on
   its pinned candidate version;
5. the status table is printed and the plot written to ``<workdir>/rollout.png``.

Traffic is scripted: a scripted chat model with token usage, tenants sending runs in
rounds (the bulk traffic on an in-memory checkpointer to keep the demo quick; the
approval story on the SQLite checkpointer).
"""

from __future__ import annotations

import math
import operator
import tempfile
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import START, StateGraph
from langgraph.types import Command, interrupt

import flagmw
from flagmw import EvaluationContext, FlagClient, FlagRegistry, SQLiteStore
from flagmw.core.versions import VERSION_ATTR
from flagmw.rollout.controller import RolloutController
from flagmw.rollout.guardrails import format_metric
from flagmw.rollout.outcomes import OutcomeRecorder
from flagmw.rollout.plot import plot_rollout
from flagmw.rollout.report import status_report
from flagmw.rollout.runtime import ARM_ATTR, attach
from flagmw.rollout.store import open_rollout_store
from flagmw.rollout.versions import load_version
from flagmw.testing.scripted import ScriptedChatModel

__all__ = ["main"]

T0 = 1_780_000_000.0  # 2026-05-28: a fixed start, so every run of the demo reads the same
AGENT = "support-agent"
TENANTS = [f"tenant-{i:03d}" for i in range(100)]
MIN_RUNS = 5
#: the demo's guardrails (latency is left out: scripted runs take milliseconds, where a
#: relative p95 bound is noise)
GUARDRAILS = [
    {"metric": "error_rate", "baseline_plus": 0.02},
    {"metric": "error_rate", "max": 0.2},
    {"metric": "cost_per_run", "baseline_times": 1.3},
    {"metric": "violation_rate", "baseline_plus": 0.01},
]

REGISTRY = {
    "flags": {
        "model.primary": {
            "type": "enum",
            "choices": ["gpt-4o", "gpt-4o-mini"],
            "default": "gpt-4o",
        },
        "model.prices": {
            "type": "json",
            "default": {
                "gpt-4o": {"input": 0.0025, "output": 0.01},
                "gpt-4o-mini": {"input": 0.00015, "output": 0.0006},
            },
        },
        "loop.max_iterations": {"type": "int", "default": 8, "min": 1, "max": 50},
        "tools.refund_api.enabled": {"type": "bool", "default": True, "binding": "hot"},
        "prompt.version": {"type": "string", "default": "refund-v6"},
    }
}
VERSIONS = {
    "v1.3.2": "agent: support-agent\nversion: v1.3.2\nmessage: the current agent\n"
    "values:\n  model.primary: gpt-4o\n  loop.max_iterations: 8\n  prompt.version: refund-v6\n",
    "v1.3.3": "agent: support-agent\nversion: v1.3.3\nmessage: gpt-4o-mini first, shorter prompt\n"
    "values:\n  model.primary: gpt-4o-mini\n  loop.max_iterations: 6\n"
    "prompt:\n  version: refund-v7\n  key: prompt.version\n"
    "  text: You are a careful support agent. Confirm the amount before any refund.\n",
}


class _Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class _World:
    spike = False
    calls = 0


class _State(TypedDict):
    ask: bool
    log: Annotated[list[str], operator.add]


def _agent(world: _World, checkpointer: Any) -> Any:
    models = {
        route: ScriptedChatModel(
            script=lambda messages, tools: AIMessage(
                "Your refund is on its way.",
                usage_metadata={"input_tokens": 900, "output_tokens": 120, "total_tokens": 1020},
            ),
            label=route,
        )
        for route in ("gpt-4o", "gpt-4o-mini")
    }

    def answer(state: _State) -> dict[str, Any]:
        rc = flagmw.current()
        version = str(rc.context.attributes.get(VERSION_ATTR, "-")).split("@")[-1]
        if state.get("ask"):
            interrupt("approve the refund?")
        models[rc["model.primary"]].invoke([HumanMessage("refund order 1042")])
        world.calls += 1
        if world.spike and version == "v1.3.3" and world.calls % 3 == 0:
            raise RuntimeError("refund API rejected the new request schema")
        return {"log": [f"{version} ({rc['model.primary']}, prompt {rc['prompt.version']})"]}

    b = StateGraph(_State)
    b.add_node("answer", answer)
    b.add_edge(START, "answer")
    return b.compile(checkpointer=checkpointer, name=AGENT)


def _traffic(
    graph: Any, recorder: OutcomeRecorder, rounds: int, tag: str, clock: _Clock, span: float
) -> tuple[int, int]:
    """``rounds`` runs of every tenant, spread over ``span`` seconds of the demo's clock."""
    ok = failed = 0
    start = clock.now
    step = span / (rounds * len(TENANTS))
    for r in range(rounds):
        for tenant in TENANTS:
            clock.now += step
            cfg = {"configurable": {"thread_id": f"{tag}-{r}-{tenant}", "tenant_id": tenant}}
            try:
                graph.invoke({"ask": False, "log": []}, cfg)
                ok += 1
            except RuntimeError:
                failed += 1
    clock.now = start + span  # exactly: no rounding short of a stage's duration
    recorder.flush()
    return ok, failed


def _arm(client: FlagClient, tenant: str) -> str:
    ctx = client.resolve(EvaluationContext(tenant_id=tenant, route=AGENT)).context
    return str(ctx.attributes.get(ARM_ATTR))


def _print_status(rep: dict[str, Any]) -> None:
    r = rep["rollout"]
    print(f"\nrollout {r['name']}: {r['status']}, candidate share {r['share']:g} %")
    print(
        f"  {'stage':>6}  {'arm':<9} {'version':<7} {'runs':>5} {'errors':>8} {'p95':>8} "
        f"{'cost/run':>9}"
    )
    for row in rep["stages"]:
        print(
            f"  {row['stage']:>4g} %  {row['arm']:<9} {row['version']:<7} {row['runs']:>5} "
            f"{format_metric('error_rate', row['error_rate']):>8} "
            f"{format_metric('p95_latency_ms', row['p95_latency_ms']):>8} "
            f"{format_metric('cost_per_run', row['cost_per_run']):>9}"
        )


def _tick(ctl: RolloutController) -> Any:
    results = ctl.tick()
    if len(results) != 1:
        raise RuntimeError(f"the demo's rollout is no longer running: {results}")
    return results[0]


def main(workdir: str | Path | None = None) -> int:
    """Run the story in ``workdir`` (a new temporary folder when None); returns 0."""
    work = (
        Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="flagmw-rollout-"))
    )
    work.mkdir(parents=True, exist_ok=True)
    print(f"flagmw demo rollout — working folder {work}")
    clock = _Clock()
    registry = FlagRegistry.from_dict(REGISTRY)
    store = SQLiteStore(work / "flagmw.db", create=True)
    client = FlagClient(registry, store, clock=clock)
    client.publish({"values": {}}, author="demo", message="first snapshot")
    rs = open_rollout_store(store)
    folder = work / "agents" / AGENT
    folder.mkdir(parents=True, exist_ok=True)
    for version, text in VERSIONS.items():
        (folder / f"{version}.yaml").write_text(text, encoding="utf-8")
        v = rs.publish_version(
            load_version(registry, folder / f"{version}.yaml"), author="ana", at=clock()
        )
        print(f"published {v.ref}  {v.content_hash[:19]}…  {v.message}")

    ctl = RolloutController(rs, clock=clock)
    r = ctl.start(AGENT, "v1.3.3", "v1.3.2", "1,5,25,50,100", unit="tenant",
                  min_duration="30m", min_runs=MIN_RUNS, guardrails=GUARDRAILS,
                  actor="ana")  # fmt: skip
    print(f"started rollout {r.name}: stages {', '.join(f'{s:g} %' for s in r.stages)} of tenants")
    runtime = attach(client, rs, background=False)
    recorder = OutcomeRecorder(rs, clock=clock, flush_interval=3600)
    world = _World()
    graph = flagmw.wrap(_agent(world, InMemorySaver()), client, observers=[recorder])

    for stage in (1, 5):
        candidates = sum(_arm(client, t) == "candidate" for t in TENANTS)
        rounds = max(1, math.ceil(MIN_RUNS / max(candidates, 1)))
        ok, failed = _traffic(graph, recorder, rounds, f"s{stage}", clock, 1800)
        [t] = ctl.tick()
        print(
            f"stage {stage:>2} %: {candidates} candidate tenants, {ok + failed} runs → "
            f"{t.action}: {t.reason}"
        )
        runtime.refresh()

    # stage 25 %: a candidate tenant's run waits for approval on the SQLite checkpointer
    tenant = next(t for t in TENANTS if _arm(client, t) == "candidate")
    with SqliteSaver.from_conn_string(str(work / "checkpoints.db")) as saver:
        hitl = flagmw.wrap(_agent(world, saver), client, observers=[recorder])
        cfg = {"configurable": {"thread_id": "hitl-1", "tenant_id": tenant}}
        hitl.invoke({"ask": True, "log": []}, cfg)
        print(f"stage 25 %: {tenant}'s run hitl-1 waits for approval on the candidate")
        world.spike = True
        ok, failed = _traffic(graph, recorder, 1, "s25", clock, 600)
        t = _tick(ctl)
        print(f"stage 25 %: {ok + failed} runs, {failed} failed → {t.action.upper()}: {t.reason}")
        runtime.refresh()
        world.spike = False
        after = {"configurable": {"thread_id": "after", "tenant_id": tenant}}
        fresh = graph.invoke({"ask": False, "log": []}, after)
        print(f"a new run of {tenant} now gets: {fresh['log'][0]}")
        out = hitl.invoke(Command(resume="approved"), cfg)
        print(f"the waiting run hitl-1 resumes on its pinned version: {out['log'][0]}")
    recorder.close()

    final = ctl.get(r.name)
    _print_status(status_report(ctl, final))
    print("\naudit:")
    for e in rs.audit(20):
        print(f"  {e['action']:<16} {e['target']:<22} {e['actor']}: {e['reason']}")
    plot = work / "rollout.png"
    plot_rollout(final, ctl.outcomes(final), plot)
    print(f"\nplot written to {plot}")
    runtime.close()
    rs.close()
    client.close()
    return 0 if final.status == "rolled_back" else 1


if __name__ == "__main__":
    raise SystemExit(main())
