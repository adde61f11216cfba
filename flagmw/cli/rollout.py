"""``flagmw rollout`` (start, status, advance, pause, resume, abort, tick, audit) and
``flagmw kill-version`` / ``unkill-version``: staged rollouts of agent versions."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from flagmw.cli.errors import EXIT_CODES_EPILOG
from flagmw.cli.options import ReasonOpt, with_session
from flagmw.cli.output import format_time, table
from flagmw.cli.session import Session

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console

    from flagmw.rollout.controller import RolloutController

__all__ = ["register"]

NameArg = Annotated[str, typer.Argument(help="The rollout, e.g. support-agent-1.3.3.")]
_NO = ("max_ttl", "registry", "environment")


GatesOpt = Annotated[
    Path | None,
    typer.Option("--gates", help="A quality gates file: required gates must pass."),
]


@contextlib.contextmanager
def _controller(g: Session, gates: Path | None = None) -> Iterator[RolloutController]:
    from flagmw.rollout.controller import RolloutController
    from flagmw.rollout.store import open_rollout_store

    spec = None
    if gates is not None:
        from flagmw.rollout.gates import load_gates

        spec = load_gates(gates)
    store = g.open_store()
    try:
        rs = open_rollout_store(store)
        try:
            gate = None
            if spec is not None:
                from flagmw.rollout.gates import gate_callable

                gate = gate_callable(rs, spec)
            yield RolloutController(rs, gate=gate, flags=store)
        finally:
            rs.close()
    finally:
        store.close()


@with_session(exclude=_NO)
def start(
    g: Session,
    agent: Annotated[str, typer.Argument(help="The agent (the route of its runs).")],
    candidate: Annotated[str, typer.Option("--candidate", help="The new version.")],
    baseline: Annotated[str, typer.Option("--baseline", help="The version it replaces.")],
    stages: Annotated[
        str, typer.Option("--stages", help="The candidate's share per stage, percent.")
    ] = "1,5,25,50,100",
    min_duration: Annotated[
        str, typer.Option("--min-duration", help="Shortest stage, e.g. 30m (0: none).")
    ] = "30m",
    min_runs: Annotated[
        int, typer.Option("--min-runs", help="Candidate runs a stage needs to be judged.")
    ] = 200,
    unit: Annotated[
        str, typer.Option("--unit", help="Sticky unit: tenant, user, thread or run.")
    ] = "tenant",
    guardrail: Annotated[
        list[str] | None,
        typer.Option(
            "--guardrail",
            help="METRIC <= VALUE | baseline + POINTS | baseline * FACTOR (repeatable; "
            "default: the built-in set, see docs/rollouts.md).",
        ),
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="The rollout's name.")] = None,
    gates: GatesOpt = None,
    shadow_share: Annotated[
        float,
        typer.Option(
            "--shadow-share",
            help="With --stages shadow,…: percent of the baseline's units also run on the "
            "candidate in the background during the shadow stage.",
        ),
    ] = 10.0,
    shadow_agreement: Annotated[
        float | None,
        typer.Option(
            "--shadow-agreement",
            help="With a shadow stage: the least same-answer rate (0-1) of the shadow "
            "runs, judged like a guardrail (default: not judged).",
        ),
    ] = None,
) -> None:
    """Start a staged rollout of CANDIDATE over BASELINE for AGENT (refused while a
    required gate of --gates fails). Stages may begin with shadow
    (shadow,1,5,25,50,100): the candidate then first runs only in the shadow of
    --shadow-share percent of the baseline's units."""
    from flagmw.rollout.guardrails import parse_guardrail

    rails = [parse_guardrail(t) for t in guardrail or ()]
    with _controller(g, gates) as ctl:
        r = ctl.start(
            agent,
            candidate,
            baseline,
            stages,
            name=name,
            unit=unit,
            min_duration=min_duration,
            min_runs=min_runs,
            guardrails=rails,
            shadow_share=shadow_share,
            shadow_agreement=shadow_agreement,
            actor=g.actor,
        )
    first = (
        f"shadow stage: {r.shadow_share:g} % of {unit}s shadowed"
        if r.in_shadow
        else f"stage {r.share:g} % of {unit}s"
    )
    g.emit_lines(
        r.to_dict(),
        [
            f"started rollout {r.name}: {candidate} over {baseline} for {agent}, {first} "
            f"(stages {','.join('shadow' if s == 0 else f'{s:g}' for s in r.stages)})"
        ],
    )


def _transition(g: Session, name: str, op: str, reason: str, gates: Path | None = None) -> None:
    with _controller(g, gates) as ctl:
        fn = getattr(ctl, op)
        r = fn(name, actor=g.actor, reason=reason)
    g.emit_lines(r.to_dict(), [f"rollout {r.name}: {r.status}, candidate share {r.share:g} %"])


@with_session(exclude=_NO)
def advance(
    g: Session,
    name: NameArg,
    reason: Annotated[str, typer.Option("--reason", help="Why.")] = "advanced by hand",
    gates: GatesOpt = None,
) -> None:
    """Move NAME to its next stage now (from the last stage: complete)."""
    _transition(g, name, "advance", reason, gates)


@with_session(exclude=_NO)
def pause(g: Session, name: NameArg, reason: ReasonOpt) -> None:
    """Hold NAME at its current share; the controller will not advance it."""
    _transition(g, name, "pause", reason)


@with_session(exclude=_NO)
def resume(
    g: Session, name: NameArg, reason: Annotated[str, typer.Option("--reason")] = "resumed"
) -> None:
    """Resume a paused rollout (the stage's clock and sample restart)."""
    _transition(g, name, "resume", reason)


@with_session(exclude=_NO)
def abort(g: Session, name: NameArg, reason: ReasonOpt) -> None:
    """Stop NAME: the baseline serves every new run at once."""
    _transition(g, name, "abort", reason)


@with_session(exclude=_NO)
def tick(
    g: Session,
    name: Annotated[str | None, typer.Argument(help="Only this rollout.")] = None,
    gates: GatesOpt = None,
) -> None:
    """Judge every running rollout once: advance, roll back, pause or wait (run it from
    cron or a worker); with --gates, a stage does not advance while a gate fails."""
    with _controller(g, gates) as ctl:
        results = ctl.tick(name, actor=f"controller ({g.actor})")
    doc = [r.__dict__ for r in results]
    lines = [f"{r.rollout}: {r.action} (share {r.share:g} %): {r.reason}" for r in results]
    g.emit_lines(doc, lines or ["no running rollout"])


@with_session(exclude=_NO)
def status(
    g: Session,
    name: Annotated[str | None, typer.Argument(help="The rollout (default: all).")] = None,
    plot: Annotated[
        Path | None,
        typer.Option("--plot", help="Write the PNG plot here (default rollout-<name>.png)."),
    ] = None,
    no_plot: Annotated[bool, typer.Option("--no-plot", help="Write no plot.")] = False,
) -> None:
    """Print each rollout's stages (runs, error rate, p95 latency, cost, violations per
    arm), its guardrails and traffic split, and write a PNG plot of each metric per
    version over time with the stage changes marked."""
    from flagmw.rollout.report import status_report

    with _controller(g) as ctl:
        rollouts = [ctl.get(name)] if name else ctl.rollouts()
        reports = [status_report(ctl, r) for r in rollouts]
        written: list[str] = []
        if not no_plot:
            from flagmw.rollout.plot import plot_rollout

            for r in rollouts:
                path = (
                    plot
                    if (plot is not None and len(rollouts) == 1)
                    else Path(f"rollout-{r.name}.png")
                )
                plot_rollout(r, ctl.outcomes(r), path)
                written.append(str(path))

    def render(out: Console) -> None:
        if not reports:
            out.print("no rollouts")
        for rep in reports:
            _render(out, rep)
        for path in written:
            out.print(f"plot written to {path}")

    g.emit({"rollouts": reports, "plots": written}, render)


def _render(out: Console, rep: dict[str, object]) -> None:
    from flagmw.rollout.guardrails import format_metric

    r = rep["rollout"]
    assert isinstance(r, dict)
    out.print(
        f"{r['name']}: {r['candidate']} over {r['baseline']} for {r['agent']} — "
        f"{r['status']}, candidate share {r['share']:g} % of {r['unit']}s"
        + (
            f", shadow stage: {r['shadow_share']:g} % of {r['unit']}s shadowed"
            if r.get("in_shadow")
            else ""
        )
        + (f" ({r['reason']})" if r.get("reason") else "")
    )
    t = table("stage", "arm", "version", "runs", "error rate", "p95", "cost/run", "violations")
    for row in rep["stages"]:  # type: ignore[attr-defined]
        t.add_row(
            "shadow" if row["stage"] == 0 else f"{row['stage']:g} %",
            row["arm"],
            row["version"],
            str(row["runs"]),
            format_metric("error_rate", row["error_rate"]),
            format_metric("p95_latency_ms", row["p95_latency_ms"]),
            format_metric("cost_per_run", row["cost_per_run"]),
            format_metric("violation_rate", row["violation_rate"]),
        )
    out.print(t)
    rails = rep.get("guardrails") or []
    if rails:
        gt = table("guardrail", "verdict", "numbers")
        for v in rails:  # type: ignore[attr-defined]
            gt.add_row(v["guardrail"], v["status"], v["message"])
        out.print(gt)
    srm = rep.get("srm")
    if isinstance(srm, dict):
        out.print(
            f"traffic split: {srm['candidate_units']} candidate / {srm['baseline_units']} "
            f"baseline units, expected {srm['expected'] * 100:g} % — "
            + ("SAMPLE RATIO MISMATCH" if srm["mismatch"] else "ok")
            + f" (p {srm['p_value']:.2g})"
        )
    sh = rep.get("shadow")
    if isinstance(sh, dict):
        out.print(
            f"shadow runs of {r['candidate']}: {sh['runs']}, same answer "
            f"{sh['same_answer'] * 100:.0f} %, same tools {sh['same_tools'] * 100:.0f} %, "
            f"{sh['errors']} failed, median latency {sh['shadow_latency_ms']:.0f} ms "
            f"(primary {sh['primary_latency_ms']:.0f} ms)"
        )
    ht = table("at", "event", "share", "actor", "reason")
    for h in r["history"]:
        ht.add_row(format_time(h["at"]), h["event"], f"{h['share']:g} %", h["actor"], h["reason"])
    out.print(ht)


@with_session(exclude=_NO)
def audit(
    g: Session, limit: Annotated[int, typer.Option("--limit", help="How many entries.")] = 50
) -> None:
    """The rollout audit log: version publishes and kills, rollout transitions (with the
    numbers that decided them)."""
    from flagmw.rollout.store import open_rollout_store

    store = g.open_store()
    try:
        rs = open_rollout_store(store)
        entries = rs.audit(limit)
        rs.close()
    finally:
        store.close()
    lines = [
        f"{format_time(e['at'])}  {e['action']:<18} {e['target']:<28} {e['actor']}: {e['reason']}"
        for e in entries
    ]
    g.emit_lines(entries, lines or ["no entries"])


VersionArgs = tuple[str, str]


@with_session(exclude=_NO)
def kill_version(
    g: Session,
    agent: Annotated[str, typer.Argument(help="The agent.")],
    version: Annotated[str, typer.Argument(help="The version to kill.")],
    reason: ReasonOpt,
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="Only for this tenant (default: everyone).")
    ] = None,
) -> None:
    """Kill an agent version: no new run gets it and a run pinned to it is assigned
    again when it resumes; a global kill of a rollout's candidate rolls it back."""
    with _controller(g) as ctl:
        rolled = ctl.kill_version(agent, version, reason=reason, actor=g.actor, tenant=tenant)
    scope = f"for tenant {tenant}" if tenant else "globally"
    lines = [f"killed {agent} {version} {scope}"]
    lines += [f"rolled back rollout {n}" for n in rolled]
    g.emit_lines(
        {"agent": agent, "version": version, "tenant": tenant, "rolled_back": rolled}, lines
    )


@with_session(exclude=_NO)
def unkill_version(
    g: Session,
    agent: Annotated[str, typer.Argument(help="The agent.")],
    version: Annotated[str, typer.Argument(help="The version.")],
    reason: ReasonOpt,
    tenant: Annotated[str | None, typer.Option("--tenant", help="The tenant kill.")] = None,
) -> None:
    """End a version kill."""
    with _controller(g) as ctl:
        ctl.unkill_version(agent, version, reason=reason, actor=g.actor, tenant=tenant)
    g.emit_lines(
        {"agent": agent, "version": version, "tenant": tenant}, [f"unkilled {agent} {version}"]
    )


def register(app: typer.Typer) -> None:
    """Add the ``rollout`` group and ``kill-version`` / ``unkill-version`` to ``app``."""
    group = typer.Typer(
        name="rollout",
        help="Staged rollouts of agent versions with guardrails.",
        no_args_is_help=True,
    )
    for command in (start, status, advance, pause, resume, abort, tick, audit):
        group.command(epilog=EXIT_CODES_EPILOG)(command)
    app.add_typer(group, name="rollout")
    app.command("kill-version", epilog=EXIT_CODES_EPILOG)(kill_version)
    app.command("unkill-version", epilog=EXIT_CODES_EPILOG)(unkill_version)
