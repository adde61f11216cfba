"""Quality gates: checks a version must pass before a rollout starts or advances
(issue 12 §5).

A gates file (``quality_gates.yaml``)::

    gates:
      - {name: offline quality, metric: offline_quality, op: ">=", threshold: 0.85}
      - {name: safety, metric: safety, op: ">=", threshold: 0.95}
      - {name: p95 latency, metric: p95_latency_ms, op: "<=", threshold: 1500, min_runs: 50}
      - {name: cost per run, metric: cost_per_run, op: "<=", threshold: 0.45}
      - {name: critical scenarios, pytest: tests/critical_scenarios.py}

A **threshold gate** compares a measured value with its threshold. The value comes from
the version's offline evaluation results (``flagmw gate record AGENT VERSION
offline_quality=0.87``: any metric name), else from its recorded run outcomes
(``error_rate``, ``violation_rate``, ``p95_latency_ms``, ``cost_per_run``,
``tokens_per_run``, ``feedback_score`` — the mean feedback score of its runs), in the
environment asked for (``staging`` to judge a version before production). A gate with no
measurement fails (``no measurement``): a missing number never passes.

A **test-suite gate** runs ``python -m pytest PATH -q`` (relative to the gates file) with
``FLAGMW_GATE_AGENT`` and ``FLAGMW_GATE_VERSION`` set, so the suite runs its scenarios
against that version with the model the user configures; it passes when pytest exits 0.
Every gate is required unless ``required: false``.
"""

from __future__ import annotations

import operator
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flagmw.core.source import Locator, load_document
from flagmw.errors import Problem, ValidationError
from flagmw.rollout.aggregate import aggregate
from flagmw.rollout.controller import JUDGED
from flagmw.rollout.stages import Rollout
from flagmw.rollout.store import RolloutStore

__all__ = [
    "Gate",
    "GateResult",
    "check_gates",
    "check_snapshot_gates",
    "gate_callable",
    "load_gates",
]

_OPS: Mapping[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}
_FIELDS = ("name", "metric", "op", "threshold", "pytest", "required", "min_runs")


@dataclass(frozen=True)
class Gate:
    """One gate: a threshold (``metric``, ``op``, ``threshold``) or a test suite
    (``pytest``: a path); ``min_runs``: outcome-based metrics need that many runs."""

    name: str
    metric: str | None = None
    op: str = ">="
    threshold: float = 0.0
    pytest: Path | None = None
    required: bool = True
    min_runs: int = 1


@dataclass(frozen=True)
class GateResult:
    """A gate judged: ``verdict`` is ``pass`` or ``fail``; ``measured`` the value (or
    None); ``detail`` how it was measured or why it failed."""

    gate: Gate
    verdict: str
    measured: float | None
    detail: str

    @property
    def blocking(self) -> bool:
        return self.verdict != "pass" and self.gate.required

    def to_dict(self) -> dict[str, Any]:
        """JSON primitives: ``gate``, ``measured``, ``op``, ``threshold`` (None for a
        test-suite gate), ``verdict``, ``required``, ``detail``."""
        return {
            "gate": self.gate.name,
            "measured": self.measured,
            "op": self.gate.op if self.gate.metric else None,
            "threshold": self.gate.threshold if self.gate.metric else None,
            "verdict": self.verdict,
            "required": self.gate.required,
            "detail": self.detail,
        }

    def line(self) -> str:
        """One line: verdict, rule, measured value, how it was measured."""
        g = self.gate
        rule = f"{g.metric} {g.op} {g.threshold:g}" if g.metric else "pytest"
        measured = "-" if self.measured is None else f"{self.measured:.4g}"
        flag = "" if g.required else " (optional)"
        verdict = self.verdict.upper()
        return f"{verdict:<4}  {g.name}{flag}: {rule}, measured {measured} ({self.detail})"


def load_gates(path: str | os.PathLike[str]) -> list[Gate]:
    """Read and check a gates file.

    Raises:
        ValidationError: a malformed file or gate (every problem located).
    """
    doc, loc = load_document(path)
    base = Path(path).resolve().parent
    problems: list[Problem] = []
    gates: list[Gate] = []
    raw = doc.get("gates") if isinstance(doc, Mapping) else None
    if not isinstance(raw, list) or not raw:
        raise ValidationError(
            [loc.problem(("gates",), "gates must be a non-empty list")], loc.source
        )
    for i, g in enumerate(raw):
        gate = _gate(g, i, loc, base, problems)
        if gate is not None:
            gates.append(gate)
    if problems:
        raise ValidationError(problems, loc.source)
    return gates


def _gate(g: Any, i: int, loc: Locator, base: Path, problems: list[Problem]) -> Gate | None:
    where = ("gates", i)
    if not isinstance(g, Mapping):
        problems.append(loc.problem(where, "a gate must be a mapping"))
        return None
    for k in g:
        if k not in _FIELDS:
            problems.append(
                loc.problem((*where, k), f"unknown field {k!r}", f"use {', '.join(_FIELDS)}")
            )
    name = g.get("name")
    if not isinstance(name, str) or not name:
        problems.append(loc.problem((*where, "name"), "a gate needs a name"))
        return None
    required = g.get("required", True)
    if g.get("pytest") is not None:
        target = g["pytest"]
        if not isinstance(target, str):
            problems.append(loc.problem((*where, "pytest"), "pytest must be a path"))
            return None
        return Gate(name, pytest=base / target, required=bool(required))
    metric, op, threshold = g.get("metric"), g.get("op", ">="), g.get("threshold")
    if not isinstance(metric, str) or not metric:
        problems.append(loc.problem((*where, "metric"), "a threshold gate needs a metric"))
        return None
    if op not in _OPS:
        problems.append(loc.problem((*where, "op"), f"op must be one of {' '.join(_OPS)}"))
        return None
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        problems.append(loc.problem((*where, "threshold"), "threshold must be a number"))
        return None
    min_runs = g.get("min_runs", 1)
    if isinstance(min_runs, bool) or not isinstance(min_runs, int) or min_runs < 1:
        problems.append(loc.problem((*where, "min_runs"), "min_runs must be a positive integer"))
        return None
    return Gate(name, metric, op, float(threshold), required=bool(required), min_runs=min_runs)


def _measure_runs(
    store: RolloutStore, runs: Sequence[Mapping[str, Any]], gate: Gate, where: str
) -> tuple[float | None, str]:
    """The gate's metric over recorded ``runs`` (``where`` describes them)."""
    assert gate.metric is not None
    if gate.metric == "feedback_score":
        ids = {o.get("run_id") for o in runs}
        scores = [float(f["score"]) for f in store.feedback() if f.get("run_id") in ids]
        if len(scores) < gate.min_runs:
            return None, f"{len(scores)} feedback scores{where}, {gate.min_runs} needed"
        return sum(scores) / len(scores), f"mean of {len(scores)} feedback scores{where}"
    judged = [o for o in runs if o.get("outcome") in JUDGED]
    if len(judged) < gate.min_runs:
        return None, f"no measurement: {len(judged)} recorded runs{where}, {gate.min_runs} needed"
    try:
        value = aggregate(judged).metric(gate.metric)
    except AttributeError:
        return None, f"no measurement of {gate.metric!r} (record it with flagmw gate record)"
    return value, f"{len(judged)} recorded runs{where}"


def _measure(
    store: RolloutStore, agent: str, version: str, gate: Gate, environment: str | None
) -> tuple[float | None, str]:
    assert gate.metric is not None
    evals = store.evals(agent, version)
    if gate.metric in evals:
        return evals[gate.metric], "offline evaluation"
    runs = [
        o
        for o in store.outcomes()
        if o.get("agent") == agent
        and o.get("version") == version
        and o.get("kind") is None
        and o.get("arm") != "shadow"
        and (environment is None or o.get("environment") == environment)
    ]
    return _measure_runs(store, runs, gate, f" in {environment}" if environment else "")


def _run_suite(gate: Gate, env_vars: Mapping[str, str]) -> tuple[bool, str]:
    assert gate.pytest is not None
    if not gate.pytest.exists():
        return False, f"{gate.pytest} not found"
    env = {**os.environ, **env_vars}
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", str(gate.pytest), "-q", "-p", "no:cacheprovider"],
            capture_output=True,
            text=True,
            env=env,
            timeout=3600,
            cwd=gate.pytest.parent if gate.pytest.is_file() else gate.pytest,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"could not run pytest: {exc}"
    lines = [ln for ln in proc.stdout.strip().splitlines() if ln.strip()]
    summary = lines[-1] if lines else f"exit {proc.returncode}"
    return proc.returncode == 0, summary[:200]


def _judge(
    gates: Sequence[Gate],
    measure: Callable[[Gate], tuple[float | None, str]],
    env_vars: Mapping[str, str],
) -> list[GateResult]:
    out: list[GateResult] = []
    for gate in gates:
        if gate.pytest is not None:
            ok, detail = _run_suite(gate, env_vars)
            out.append(GateResult(gate, "pass" if ok else "fail", None, detail))
            continue
        value, detail = measure(gate)
        if value is None:
            out.append(GateResult(gate, "fail", None, detail))
            continue
        ok = _OPS[gate.op](value, gate.threshold)
        out.append(GateResult(gate, "pass" if ok else "fail", value, detail))
    return out


def check_gates(
    store: RolloutStore,
    agent: str,
    version: str,
    gates: Sequence[Gate],
    *,
    environment: str | None = None,
) -> list[GateResult]:
    """Judge every gate for ``agent`` ``version`` (on its offline results, else its
    recorded runs — shadow runs left out — in ``environment`` when given)."""
    return _judge(
        gates,
        lambda gate: _measure(store, agent, version, gate, environment),
        {"FLAGMW_GATE_AGENT": agent, "FLAGMW_GATE_VERSION": version},
    )


def check_snapshot_gates(
    store: RolloutStore,
    rev: int,
    gates: Sequence[Gate],
    *,
    environment: str | None = None,
    agent: str | None = None,
) -> list[GateResult]:
    """Judge every gate for snapshot ``rev`` of the flag store whose rollout store is
    ``store``: threshold gates on the runs recorded under that rev (the outcome's
    ``snapshot_rev``; only ``agent``'s and in ``environment`` when given; shadow runs
    left out). Offline results belong to agent versions, so an offline metric has no
    measurement here (it fails). A test-suite gate runs with ``FLAGMW_GATE_SNAPSHOT_REV``
    (and ``FLAGMW_GATE_AGENT`` when given) set."""
    runs = [
        o
        for o in store.outcomes()
        if o.get("snapshot_rev") == rev
        and o.get("kind") is None
        and o.get("arm") != "shadow"
        and (agent is None or o.get("agent") == agent)
        and (environment is None or o.get("environment") == environment)
    ]
    where = f" on rev {rev}" + (f" of {agent}" if agent else "")
    where += f" in {environment}" if environment else ""
    env = {"FLAGMW_GATE_SNAPSHOT_REV": str(rev)} | ({"FLAGMW_GATE_AGENT": agent} if agent else {})
    return _judge(gates, lambda gate: _measure_runs(store, runs, gate, where), env)


def gate_callable(
    store: RolloutStore, gates: Sequence[Gate], *, environment: str | None = None
) -> Callable[[Rollout | None, str, str], list[str]]:
    """A ``RolloutController(gate=...)``: the failures of the required gates, as
    sentences (``offline quality: 0.8 >= 0.85 fails``)."""

    def gate(r: Rollout | None, agent: str, version: str) -> list[str]:
        results = check_gates(store, agent, version, gates, environment=environment)
        return [
            f"{x.gate.name}: "
            + (
                f"{x.measured:g} {x.gate.op} {x.gate.threshold:g} fails"
                if x.measured is not None
                else x.detail
            )
            for x in results
            if x.blocking
        ]

    return gate
