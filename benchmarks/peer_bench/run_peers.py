#!/usr/bin/env python3
"""Run the shared peer benchmarks and the flagmw adapter side by side, in one invocation.

    .bench-venv/bin/python benchmarks/peer_bench/run_peers.py                # all, N=100k
    .bench-venv/bin/python benchmarks/peer_bench/run_peers.py --with-loopback --repeat 2 \\
        --json benchmarks/results/peers.json
    .bench-venv/bin/python benchmarks/peer_bench/run_peers.py --only reference growthbook flagmw

The shared folder (``PEER_BENCH_DIR`` or ``--peer-dir``, default
``<repo>/../shared/peer_bench``) is read-only and used as it is: its ``bench_*.py`` scripts
and its ``_harness.py`` run unmodified, by path, exactly as its ``run_all.py`` runs them
(each script in its own interpreter, ``cwd`` = the shared folder, ``PEER_BENCH_N`` and
``PYTHONHASHSEED=0`` in the environment). This folder adds ``bench_flagmw.py``, which
imports the same ``_harness.py`` from the shared folder. Nothing is copied.

``--merge a.json b.json`` prints one table from earlier ``--json`` outputs, every round of
every file side by side (to show run-to-run spread; compare rows within one run).

``--repeat K`` runs every script K times, round-robin (all scripts once, then again), so
slow drifts of a shared machine hit every row alike; the table shows each round's
median and sorts by their median. The "× flagmw" column divides a row's median by the
median of flagmw's resolve path (``client.is_enabled``, SQLiteStore): below 1 is faster
than flagmw. Numbers are comparable only within one invocation on one machine.

Exit status: 1 when a script failed (not when an SDK is missing: that row is SKIP).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DEFAULT_PEER_DIR = os.path.normpath(os.path.join(REPO, "..", "shared", "peer_bench"))
BENCH_VENV_PYTHON = os.path.join(REPO, ".bench-venv", "bin", "python")

#: flagmw's row that the ratio column divides by (the resolve path, the real default store)
FLAGMW_REFERENCE_MODE = "client.is_enabled (resolve path), SQLiteStore"


def discover(peer_dir: str, only: list[str] | None, with_loopback: bool) -> list[str]:
    """The shared ``bench_*.py`` scripts and this folder's, filtered like ``run_all.py``."""
    files = sorted(glob.glob(os.path.join(peer_dir, "bench_*.py")))
    files += sorted(glob.glob(os.path.join(HERE, "bench_*.py")))
    if not with_loopback:
        files = [f for f in files if "loopback" not in os.path.basename(f)]
    if only:
        files = [f for f in files if any(s in os.path.basename(f) for s in only)]
    return files


def run_script(
    python: str, path: str, peer_dir: str, n: int, timeout: int
) -> tuple[list[dict[str, Any]], str | None]:
    """Run one bench script; its RESULT rows and a problem (``SKIP …``/``FAIL …``) or None."""
    env = dict(os.environ, PEER_BENCH_N=str(n), PYTHONHASHSEED="0", PEER_BENCH_DIR=peer_dir)
    try:
        p = subprocess.run(
            [python, path], capture_output=True, text=True, timeout=timeout, env=env, cwd=peer_dir
        )
    except subprocess.TimeoutExpired:
        return [], "TIMEOUT"
    rows = [json.loads(ln[7:]) for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
    for r in rows:
        r["script"] = os.path.basename(path)
    if p.returncode != 0 or not rows:
        tail = ((p.stderr or p.stdout).strip().splitlines() or ["?"])[-1][:160]
        missing = "ModuleNotFoundError" in p.stderr or "ImportError" in p.stderr
        return rows, f"{'SKIP' if missing else 'FAIL'} rc={p.returncode}: {tail}"
    return rows, None


def combine(rounds: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per (script, sdk, mode): round 1's details, every round's median, and the
    median of those medians (``median_ns``)."""
    merged: dict[tuple[str, str, str], dict[str, Any]] = {}
    for rows in rounds:
        for r in rows:
            k = (r["script"], r["sdk"], r["mode"])
            if k not in merged:
                merged[k] = dict(r, medians=[], correct_all=True)
            m = merged[k]
            m["medians"].append(r["median_ns"])
            m["correct_all"] = m["correct_all"] and r["correct"]
    out = list(merged.values())
    for m in out:
        m["median_ns"] = int(statistics.median(m["medians"]))
    out.sort(key=lambda m: m["median_ns"])
    return out


def table(rows: list[dict[str, Any]]) -> str:
    """The combined markdown table, sorted by median."""
    ref = next(
        (r for r in rows if r["sdk"] == "flagmw" and r["mode"] == FLAGMW_REFERENCE_MODE), None
    )
    hdr = (
        "| # | SDK | version | mode | median ns/eval | per round | p99 ns | ctx+eval median ns | "
        "evals/s (1 core) | setup ms | peak RSS MiB | rollout % true | correct | × flagmw |"
    )
    out = [hdr, "|" + "---|" * 14]
    for i, r in enumerate(rows, 1):
        setup = "" if r.get("setup_ms") is None else f"{r['setup_ms']:,.0f}"
        ratio = f"{r['median_ns'] / ref['median_ns']:.2f}×" if ref else ""
        name = f"**{r['sdk']}**" if r["sdk"] == "flagmw" else r["sdk"]
        out.append(
            f"| {i} | {name} | {r['version']} | {r['mode']} | {r['median_ns']:,} | "
            f"{' / '.join(f'{m:,}' for m in r['medians'])} | {r['p99_ns']:,} | "
            f"{r['ctx_eval_median_ns']:,} | {1e9 / max(1, r['bulk_mean_ns']):,.0f} | {setup} | "
            f"{r.get('maxrss_mb', '')} | {100 * r['rollout_true_rate']:.1f} | "
            f"{'yes' if r['correct_all'] else 'NO'} | {ratio} |"
        )
    return "\n".join(out)


def pinned_line(rows: list[dict[str, Any]]) -> str | None:
    """flagmw's pinned read against the reference floor's."""
    mine = next((r for r in rows if r["sdk"] == "flagmw" and r["mode"].startswith("pinned")), None)
    floor = next(
        (r for r in rows if r["sdk"] == "reference floor" and r["mode"].startswith("pinned")),
        None,
    )
    if not mine or not floor:
        return None
    return (
        f"Pinned read: flagmw rc[key] {mine['median_ns']:,} ns vs reference floor "
        f"{floor['median_ns']:,} ns ({mine['median_ns'] / floor['median_ns']:.2f}×); "
        f"resolve + read (ctx+eval): {mine['ctx_eval_median_ns']:,} vs "
        f"{floor['ctx_eval_median_ns']:,} ns."
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    default_python = BENCH_VENV_PYTHON if os.path.exists(BENCH_VENV_PYTHON) else sys.executable
    ap.add_argument("--python", default=default_python, help="interpreter for every script")
    ap.add_argument("--peer-dir", default=os.environ.get("PEER_BENCH_DIR", DEFAULT_PEER_DIR))
    ap.add_argument("--n", type=int, default=100_000, help="timed evaluations per mode")
    ap.add_argument("--only", nargs="*", default=None, help="substrings of bench file names")
    ap.add_argument("--with-loopback", action="store_true", help="include Flipt (loopback stub)")
    ap.add_argument("--repeat", type=int, default=1, help="rounds over every script")
    ap.add_argument("--json", default=None, help="write all results to this file")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per script")
    ap.add_argument(
        "--merge",
        nargs="+",
        metavar="JSON",
        help="print one table from earlier --json outputs (their rounds side by side) and exit",
    )
    args = ap.parse_args(argv)
    if args.merge:
        merged_rounds: list[list[dict[str, Any]]] = []
        for path in args.merge:
            with open(path) as fh:
                merged_rounds += json.load(fh)["rounds"]
        print(table(combine(merged_rounds)))
        return 0

    if not os.path.exists(os.path.join(args.peer_dir, "_harness.py")):
        print(f"no _harness.py in {args.peer_dir} (set --peer-dir or PEER_BENCH_DIR)")
        return 2
    files = discover(args.peer_dir, args.only, args.with_loopback)
    rounds: list[list[dict[str, Any]]] = []
    problems: dict[str, str] = {}
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = os.getloadavg()[0]
    for k in range(args.repeat):
        got: list[dict[str, Any]] = []
        for f in files:
            name = os.path.basename(f)
            t0 = time.time()
            rows, problem = run_script(args.python, f, args.peer_dir, args.n, args.timeout)
            got += rows
            if problem:
                problems[name] = problem
            print(
                f"# round {k + 1}/{args.repeat} {name}: {len(rows)} result(s) in "
                f"{time.time() - t0:.1f}s",
                file=sys.stderr,
                flush=True,
            )
        rounds.append(got)
    rows = combine(rounds)
    print(table(rows))
    if rows:
        r0 = rows[0]
        print(
            f"\nN={r0['n']:,} evals/mode, {args.repeat} round(s); median = median of the "
            f"rounds' medians; p99, ctx+eval, evals/s, setup and RSS from round 1. "
            f"{started}, CPU {r0.get('cpu', '?')} ×{os.cpu_count()}, load {load:.2f} at start, "
            f"Python {r0['python']} ({args.python}); timer overhead ~{r0['timer_overhead_ns']} ns "
            f"(included in medians)."
        )
    line = pinned_line(rows)
    if line:
        print(line)
    for name, why in sorted(problems.items()):
        print(f"- {name}: {why}")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as fh:
            json.dump(
                {
                    "started": started,
                    "python": args.python,
                    "platform": platform.platform(),
                    "argv": sys.argv[1:],
                    "rows": rows,
                    "rounds": rounds,
                    "problems": problems,
                },
                fh,
                indent=1,
            )
    return 1 if any(not p.startswith("SKIP") for p in problems.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
