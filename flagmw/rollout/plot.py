"""The PNG plot of a rollout: each guardrail metric per version over time, with the
stage changes marked (matplotlib, the ``plot`` extra: ``pip install 'flagmw[plot]'``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from flagmw.errors import FlagmwError
from flagmw.rollout.aggregate import aggregate
from flagmw.rollout.controller import JUDGED
from flagmw.rollout.stages import Rollout

__all__ = ["plot_rollout"]

PANELS = (
    ("error_rate", "error rate (%)", 100.0),
    ("p95_latency_ms", "p95 latency (ms)", 1.0),
    ("cost_per_run", "cost per run", 1.0),
    ("violation_rate", "violation rate (%)", 100.0),
)


def plot_rollout(
    r: Rollout,
    outcomes: Sequence[Mapping[str, Any]],
    path: str | os.PathLike[str],
    *,
    bins: int = 24,
) -> None:
    """Write the plot of ``r`` from its ``outcomes`` to ``path`` (PNG).

    Raises:
        FlagmwError: matplotlib is not installed, or the file cannot be written.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        raise FlagmwError("the rollout plot needs matplotlib: pip install 'flagmw[plot]'") from None
    start = r.created_at
    end = max(
        [float(o.get("at", start)) for o in outcomes] + [h["at"] for h in r.history] + [start + 1]
    )
    width = (end - start) / bins
    fig, axes = plt.subplots(len(PANELS), 1, figsize=(9, 2.3 * len(PANELS)), sharex=True)
    for ax, (metric, label, scale) in zip(axes, PANELS, strict=True):
        for version, style in ((r.baseline, "-"), (r.candidate, "-")):
            xs, ys = [], []
            # a config canary's runs carry no agent version: its arms are its revs
            field, want = ("arm", _arm(r, version)) if r.kind == "config" else ("version", version)
            mine = [o for o in outcomes if o.get(field) == want and o.get("outcome") in JUDGED]
            for i in range(bins):
                lo, hi = start + i * width, start + (i + 1) * width
                chunk = [
                    o
                    for o in mine
                    if lo <= float(o.get("at", 0)) < hi
                    or (i == bins - 1 and float(o.get("at", 0)) == hi)
                ]
                if not chunk:
                    continue
                value = aggregate(chunk).metric(metric)
                if value is None:
                    continue
                xs.append((lo + width / 2 - start) / 60.0)
                ys.append(value * scale)
            ax.plot(xs, ys, style, marker="o", markersize=3, label=version)
        ax.set_ylabel(label, fontsize=8)
        top = max(ax.get_ylim()[1], 1e-9)  # values are never negative: start at 0, a
        ax.set_ylim(-0.04 * top, top)  # little below so a line at 0 stays visible
        ax.grid(alpha=0.3)
        for h in r.history:
            x = (h["at"] - start) / 60.0
            color = "red" if h["event"] in ("rollback", "abort") else "grey"
            ax.axvline(x, color=color, linestyle="--", linewidth=0.8)
            if ax is axes[0]:
                text = (
                    h["event"]
                    if h["event"] in ("rollback", "abort", "pause")
                    else f"{h['share']:g} %"
                )
                ax.annotate(
                    text,
                    (x, 1.0),
                    xycoords=("data", "axes fraction"),
                    fontsize=7,
                    color=color,
                    rotation=90,
                    va="top",
                    ha="left",
                    xytext=(2, -2),
                    textcoords="offset points",
                )
    # above the first panel, clear of the stage labels
    axes[0].legend(fontsize=8, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=2, frameon=False)
    axes[-1].set_xlabel("minutes since the rollout started")
    fig.suptitle(f"rollout {r.name}: {r.candidate} over {r.baseline} ({r.status})", fontsize=10)
    fig.tight_layout()
    try:
        fig.savefig(path, format="png", dpi=100)
    except OSError as exc:
        raise FlagmwError(
            f"cannot write the plot {os.fspath(path)}: {exc.strerror or exc}"
        ) from None
    finally:
        plt.close(fig)


def _arm(r: Rollout, version: str) -> str:
    return "candidate" if version == r.candidate else "baseline"
