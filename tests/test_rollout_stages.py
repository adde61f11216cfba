"""The stage machine (property tests), sticky assignment, guardrail arithmetic with
fixed data, and the SRM test."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flagmw.core.context import EvaluationContext
from flagmw.rollout.aggregate import Stats, aggregate, percentile
from flagmw.rollout.guardrails import evaluate, parse_guardrail
from flagmw.rollout.srm import srm_check
from flagmw.rollout.stages import Rollout, RolloutError, assign_arm, parse_stages

OPS = ("advance", "pause", "resume", "rollback", "abort")


def _rollout(stages: tuple[float, ...] = (1, 5, 25, 50, 100), unit: str = "user") -> Rollout:
    return Rollout.start("r", "a", "v2", "v1", stages, unit=unit, at=0.0, actor="t")


def _apply(r: Rollout, op: str, at: float) -> Rollout:
    if op == "advance":
        return r.advance(at, "t")
    if op in ("pause", "rollback", "abort"):
        return getattr(r, op)(at, "t", "why")
    return r.resume(at, "t")


stage_lists = st.lists(
    st.integers(min_value=1, max_value=9999), min_size=0, max_size=6, unique=True
).map(lambda xs: (*tuple(sorted(x / 100 for x in xs if x < 10000)), 100))


@given(stage_lists, st.lists(st.sampled_from(OPS), max_size=30))
def test_shares_only_grow_until_rollback_which_is_immediate(
    stages: tuple[float, ...], ops: list[str]
) -> None:
    r = _rollout(stages)
    shares = [r.share]
    for i, op in enumerate(ops):
        before = r
        try:
            r = _apply(r, op, float(i + 1))
        except RolloutError:
            assert r == before  # a refused transition changes nothing
            continue
        if op in ("rollback", "abort"):
            assert r.share == 0, "rollback takes the share to 0 at once"
            assert not r.active
        else:
            assert r.share >= shares[-1], "shares only grow until a rollback"
        shares.append(r.share)
    # once rolled back or aborted, nothing moves it again
    if r.status in ("rolled_back", "aborted"):
        for op in OPS:
            with pytest.raises(RolloutError):
                _apply(r, op, 99.0)
    assert [h["share"] for h in r.history] == shares


@given(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=40), stage_lists)
def test_units_never_leave_the_candidate_while_the_share_grows(
    units: list[str], stages: tuple[float, ...]
) -> None:
    r = _rollout(stages)
    inside: set[str] = set()
    while True:
        now = {u for u in units if assign_arm(r, EvaluationContext(user_id=u)) == "candidate"}
        assert inside <= now, "a unit admitted at a smaller share stays admitted"
        inside = now
        if r.status == "completed":
            assert now == set(units)
            break
        r = r.advance(1.0, "t")


def test_assignment_follows_the_share_and_the_unit() -> None:
    r = _rollout((50, 100), unit="tenant")
    tenants = [f"tenant-{i}" for i in range(2000)]
    got = sum(assign_arm(r, EvaluationContext(tenant_id=t)) == "candidate" for t in tenants)
    assert 900 < got < 1100  # ~50 % of tenants
    assert assign_arm(r, EvaluationContext(user_id="u")) == "baseline"  # no tenant: baseline
    # the same tenant, any user: one arm (tenants for B2B)
    arms = {assign_arm(r, EvaluationContext(tenant_id="acme", user_id=f"u{i}")) for i in range(50)}
    assert len(arms) == 1
    assert assign_arm(r.rollback(1.0, "t", "x"), EvaluationContext(tenant_id="acme")) == "baseline"


def test_stage_lists_are_checked() -> None:
    assert parse_stages("1,5,25,50,100") == (1, 5, 25, 50, 100)
    assert parse_stages("0.5,100") == (0.5, 100)
    for bad in ("5,1,100", "1,5,50", "0,100", "a,100", "1,1,100", "0.001,100"):
        with pytest.raises(RolloutError):
            parse_stages(bad)
    with pytest.raises(RolloutError, match="unit"):
        Rollout.start("r", "a", "v2", "v1", "100", unit="org", at=0, actor="t")
    with pytest.raises(RolloutError, match="same version"):
        Rollout.start("r", "a", "v1", "v1", "100", at=0, actor="t")


def test_the_stored_form_round_trips() -> None:
    r = _rollout().advance(5.0, "ops").pause(6.0, "ops", "srm")
    assert Rollout.from_dict(r.to_dict()) == r


# -- guardrail arithmetic with fixed data --------------------------------------------------


def _stats(runs: int, errors: int, *, p95: float = 800.0, cost: float = 0.0) -> Stats:
    return Stats(runs, errors, 0, p95, cost * runs, 0, 0)


def test_relative_error_rate_guardrail_says_why_with_the_numbers() -> None:
    g = parse_guardrail("error_rate <= baseline + 0.02")
    assert g == {"metric": "error_rate", "baseline_plus": 0.02}
    v = evaluate(g, _stats(412, 29), _stats(1000, 20), min_runs=200)
    assert v.status == "fail"
    assert v.message == "error rate 7.0 % > baseline 2.0 % + 2 points over 412 runs"
    ok = evaluate(g, _stats(412, 16), _stats(1000, 20), min_runs=200)  # 3.9 % ≤ 4 %
    assert ok.status == "pass"
    assert ok.message == "error rate 3.9 % ≤ baseline 2.0 % + 2 points over 412 runs"
    # the boundary: exactly baseline + 2 points passes
    assert evaluate(g, _stats(100, 4), _stats(100, 2), min_runs=100).status == "pass"
    assert evaluate(g, _stats(100, 5), _stats(100, 2), min_runs=100).status == "fail"


def test_guardrails_wait_for_enough_runs() -> None:
    g = parse_guardrail("error_rate <= 0.05")
    v = evaluate(g, _stats(199, 199), _stats(1000, 0), min_runs=200)
    assert (v.status, v.message) == ("insufficient", "error rate: 199 candidate runs, 200 needed")
    rel = parse_guardrail("p95_latency_ms <= baseline * 1.5")
    v = evaluate(rel, _stats(300, 0, p95=1300), _stats(10, 0, p95=800), min_runs=200)
    assert v.status == "insufficient"  # too few baseline runs for a relative judgement
    v = evaluate(rel, _stats(300, 0, p95=1300), _stats(300, 0, p95=800), min_runs=200)
    assert (v.status, v.message) == (
        "fail",
        "p95 latency 1300 ms > baseline 800 ms × 1.5 over 300 runs",
    )
    cost = parse_guardrail("cost_per_run <= 0.45")
    assert evaluate(cost, _stats(300, 0, cost=0.5), _stats(0, 0), 200).status == "fail"
    for bad in ("error_rate >= 1", "speed <= 1", "error_rate <= baseline - 1"):
        with pytest.raises(RolloutError):
            parse_guardrail(bad)


def test_aggregates_and_the_nearest_rank_p95() -> None:
    assert percentile([float(i) for i in range(1, 101)], 95) == 95.0
    assert percentile([5.0], 95) == 5.0
    assert percentile([], 95) is None
    s = aggregate(
        [
            {"outcome": "completed", "latency_ms": 100, "cost": 0.1, "input_tokens": 10},
            {"outcome": "failed", "latency_ms": 300, "cost": 0.3, "violations": [{"kind": "x"}]},
            {"outcome": "drained", "latency_ms": 200, "cost": 0.2, "output_tokens": 5},
        ]
    )
    assert (s.runs, s.errors, s.violations, s.p95_latency_ms) == (3, 1, 1, 300.0)
    assert s.cost_per_run == pytest.approx(0.2)
    assert s.tokens_per_run == 5.0


# -- sample ratio mismatch -----------------------------------------------------------------


def test_srm_detects_a_skewed_split() -> None:
    fine = srm_check(550, 450, 0.5)  # chi2 = 10.0, p = 0.00157: not below 0.001
    assert fine.chi2 == pytest.approx(10.0)
    assert fine.p_value == pytest.approx(0.001565, rel=1e-3)
    assert not fine.mismatch
    skew = srm_check(560, 440, 0.5)  # chi2 = 14.4, p = 0.000148
    assert skew.chi2 == pytest.approx(14.4)
    assert skew.p_value == pytest.approx(0.0001478, rel=1e-3)
    assert skew.mismatch
    assert "candidate 560 of 1000 units (56.0 %) for an expected 50.0 %" in skew.describe()
    # 5 % expected: 100 candidate units of 1000 is far too many
    assert srm_check(100, 900, 0.05).mismatch
    assert not srm_check(52, 948, 0.05).mismatch
    assert not srm_check(3, 1, 0.5).mismatch  # too few to test


@given(st.integers(0, 5000), st.integers(0, 5000), st.floats(0.01, 0.99))
def test_srm_p_value_is_a_probability(c: int, b: int, p: float) -> None:
    r = srm_check(c, b, p)
    assert 0.0 <= r.p_value <= 1.0
    assert r.mismatch == (r.p_value < 0.001)
    assert not math.isnan(r.chi2)
