"""Shared timing helpers for the flagmw benchmarks.

The method is the one of the shared peer harness (``shared/peer_bench/_harness.py``), so
figures from ``bench_core`` and from the peer comparison read the same way:

* warm-up calls first (caches, compiled overlays, branch predictors);
* then every call timed on its own with :func:`time.perf_counter_ns`; the report gives
  the median, p90 and p99 of those samples (percentile = the sample at index
  ``int(q * n)`` of the sorted list, as in the harness);
* the median cost of timing an empty call (``timer_overhead_ns``, 30–90 ns on this kind
  of machine) is measured and reported; medians **include** it, ``net`` columns
  subtract it;
* an untimed bulk loop over the same arguments gives a mean per call as a cross-check.

On a shared, noisy machine read medians and ratios, not means. Later benchmarks (the
LangGraph wrap overhead, checkpoint sizes) reuse :func:`measure`, :func:`measure_seconds`
and :func:`markdown_table`.
"""

from __future__ import annotations

import gc
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = [
    "Row",
    "fmt_value",
    "machine_info",
    "markdown_table",
    "measure",
    "measure_seconds",
    "percentile",
    "timer_overhead_ns",
    "verdict",
]

REPO = Path(__file__).resolve().parent.parent


def percentile(sorted_samples: Sequence[float], q: float) -> float:
    """The sample at index ``int(q * n)`` of an ascending list (the harness's rule)."""
    return sorted_samples[min(len(sorted_samples) - 1, int(q * len(sorted_samples)))]


def timer_overhead_ns(n: int = 200_000) -> int:
    """Median cost (ns) of timing an empty one-argument call with ``perf_counter_ns``."""
    pc = time.perf_counter_ns
    noop = lambda _x: None
    samples = [0] * n
    for i in range(n):
        t0 = pc()
        noop(None)
        t1 = pc()
        samples[i] = t1 - t0
    return int(statistics.median(samples))


@dataclass
class Row:
    """One measured scenario.

    Attributes:
        group: the scenario group (e.g. ``"eval"``).
        name: what was timed, e.g. ``"client.is_enabled (SQLiteStore)"``.
        unit: ``"ns"`` (per-call samples) or ``"s"`` (single-shot operations).
        n: number of timed samples.
        median, p90, p99: of the samples, in ``unit``.
        mean: the untimed bulk loop's mean per call (``"ns"`` rows), else the samples'
            mean.
        overhead_ns: the timer overhead measured in the same process.
        target: the issue-2 target in ``unit`` (None: informational).
        strict: the target is "below" (``<``) rather than "at most" (``≤``).
        verdict: ``PASS`` / ``FAIL`` / ``PASS (net)`` / ``""`` (see :func:`verdict`).
        notes: how it was measured.
        extra: anything else worth keeping in the JSON output.
    """

    group: str
    name: str
    unit: str
    n: int
    median: float
    p90: float
    p99: float
    mean: float
    overhead_ns: int
    target: float | None = None
    strict: bool = False
    verdict: str = ""
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON primitives."""
        return asdict(self)


def verdict(median: float, overhead: float, target: float | None, *, strict: bool) -> str:
    """``PASS`` when the median (timer overhead included) meets the target; ``PASS (net)``
    when only the median minus the timer overhead does; else ``FAIL``; ``""`` without a
    target."""
    if target is None:
        return ""

    def ok(x: float) -> bool:
        return x < target if strict else x <= target

    if ok(median):
        return "PASS"
    if ok(median - overhead):
        return "PASS (net)"
    return "FAIL"


def measure(
    group: str,
    name: str,
    fn: Callable[[Any], Any],
    args: Sequence[Any],
    *,
    n: int,
    warmup: int = 5_000,
    target_ns: float | None = None,
    strict: bool = False,
    overhead_ns: int | None = None,
    bulk: bool = True,
    notes: str = "",
    extra: dict[str, Any] | None = None,
) -> Row:
    """Time ``fn(args[i % len(args)])`` ``n`` times, one sample per call (ns).

    Args:
        fn: the operation; it gets one argument from ``args`` per call (cycled).
        args: prepared arguments (e.g. evaluation contexts built before timing).
        n: number of timed calls; ``warmup`` untimed calls come first.
        target_ns: the issue-2 target (ns), or None.
        strict: the target is "below" rather than "at most".
        overhead_ns: the timer overhead, measured here when None.
        bulk: also run an untimed loop of ``n`` calls and report its mean.
    """
    k = len(args)
    for i in range(warmup):
        fn(args[i % k])
    if overhead_ns is None:
        overhead_ns = timer_overhead_ns()
    pc = time.perf_counter_ns
    samples = [0] * n
    gc.collect()
    for i in range(n):
        a = args[i % k]
        t0 = pc()
        fn(a)
        t1 = pc()
        samples[i] = t1 - t0
    samples.sort()
    if bulk:
        t0 = pc()
        for i in range(n):
            fn(args[i % k])
        mean = (pc() - t0) / n
    else:
        mean = statistics.fmean(samples)
    med = float(statistics.median(samples))
    return Row(
        group,
        name,
        "ns",
        n,
        med,
        float(percentile(samples, 0.90)),
        float(percentile(samples, 0.99)),
        float(mean),
        overhead_ns,
        target_ns,
        strict,
        verdict(med, overhead_ns, target_ns, strict=strict),
        notes,
        {"max": samples[-1], **(extra or {})},
    )


def measure_seconds(
    group: str,
    name: str,
    samples: Sequence[float],
    *,
    unit: str = "s",
    notes: str = "",
    extra: dict[str, Any] | None = None,
) -> Row:
    """A row from single-shot timings already taken (seconds, or ``unit``)."""
    s = sorted(samples)
    return Row(
        group,
        name,
        unit,
        len(s),
        float(statistics.median(s)),
        float(percentile(s, 0.90)),
        float(percentile(s, 0.99)),
        float(statistics.fmean(s)),
        0,
        notes=notes,
        extra=dict(extra or {}),
    )


def fmt_value(x: float, unit: str) -> str:
    """A figure for a table: ns without decimals, seconds with three, others with one."""
    if unit == "ns":
        return f"{x:,.0f}"
    if unit == "s":
        return f"{x:,.3f}" if x < 10 else f"{x:,.1f}"
    return f"{x:,.1f}"


def markdown_table(rows: Sequence[Row]) -> str:
    """Rows as a markdown table (per-call rows in ns, single-shot rows in their unit)."""
    out = [
        "| group | scenario | n | median | p90 | p99 | mean | unit | target | verdict |",
        "|---|---|---:|---:|---:|---:|---:|---|---:|---|",
    ]
    for r in rows:
        bound = ("< " if r.strict else "≤ ") + fmt_value(r.target, r.unit) if r.target else ""
        stats = " | ".join(fmt_value(x, r.unit) for x in (r.median, r.p90, r.p99, r.mean))
        out.append(
            f"| {r.group} | {r.name} | {r.n:,} | {stats} | {r.unit} | {bound} | {r.verdict} |"
        )
    return "\n".join(out)


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "-"


def machine_info() -> dict[str, Any]:
    """Date, CPU, cores, load, Python, the flagmw commit (``+dirty`` when the work tree
    has uncommitted changes under ``flagmw/``) and the versions that matter."""
    dirty = _git("status", "--porcelain", "--", "flagmw")
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu(),
        "cores": os.cpu_count(),
        "loadavg": os.getloadavg(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "sqlite": __import__("sqlite3").sqlite_version,
        "flagmw_commit": _git("rev-parse", "--short", "HEAD") + ("+dirty" if dirty else ""),
        "flagmw_uncommitted": [ln[3:] for ln in dirty.splitlines()],
        "packages": {d: _version(d) for d in ("flagmw", "mmh3", "pydantic", "PyYAML")},
        "executable": sys.executable,
    }
