"""Instructions per run of a bare and a wrapped 5-node graph, counted by valgrind's
callgrind: a figure the load of a shared machine does not move, for telling a real
change of the wrapper's cost (issue 7 §5) from noise. Not a timing: the targets stay
those of :mod:`benchmarks.bench_wrap_costs` (CPU-clock ratios).

The graphs, the client and the configs are those of ``bench_wrap_costs``. The script
runs itself under ``valgrind --tool=callgrind --instr-atstart=no``; after warm-up it
switches counting on (``callgrind_control -i on``), runs each graph ``--runs`` times on
new threads with the collector off, and dumps the count after each (``callgrind_control
-d``); a phase of empty iterations measures what the dump itself adds, which is
subtracted. Needs ``valgrind`` (3.19 used); about 30 s for 40 runs.

    .venv/bin/python -m benchmarks.wrap_instructions [--runs 40]
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

PHASES = ("null", "bare", "wrapped", "notrace")


def _child(runs: int) -> None:
    from langgraph.checkpoint.memory import InMemorySaver

    import flagmw
    from benchmarks.bench_wrap_costs import cfg, client_50, trivial

    client = client_50()
    saver = InMemorySaver()
    graphs = {
        "bare": trivial(5, saver),
        "wrapped": flagmw.wrap(trivial(5, saver), client),
        "notrace": flagmw.wrap(trivial(5, saver), client, tracer=False),
    }
    for graph in graphs.values():
        for _ in range(10):
            graph.invoke({}, cfg())
    configs = {name: [cfg() for _ in range(runs)] for name in graphs}
    pid = str(os.getpid())

    def control(*args: str) -> None:
        subprocess.run(["callgrind_control", *args, pid], capture_output=True, check=False)

    gc.disable()
    control("-i", "on")
    control("-z")
    for _ in range(runs):
        pass
    control("-d", "null")
    for name, graph in graphs.items():
        for config in configs[name]:
            graph.invoke({}, config)
        control("-d", name)
    client.close()


def measure(runs: int) -> dict[str, float]:
    """Instructions per run of each phase (the dump's own cost subtracted)."""
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit("valgrind (callgrind) is not installed")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cg.out"
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--instr-atstart=no",
                f"--callgrind-out-file={out}",
                sys.executable,
                "-m",
                "benchmarks.wrap_instructions",
                "--child",
                "--runs",
                str(runs),
            ],
            check=True,
            capture_output=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
        totals: dict[str, int] = {}
        for dump in Path(tmp).glob("cg.out.*"):
            text = dump.read_text(errors="replace")
            name = re.search(r"^desc: Trigger: .*?(\w+)\s*$", text, re.M)
            total = re.search(r"^totals:\s+(\d+)", text, re.M)
            if name and total:
                totals[name.group(1)] = int(total.group(1))
    missing = [p for p in PHASES if p not in totals]
    if missing:
        raise SystemExit(f"callgrind wrote no count for {missing}")
    null = totals["null"]
    return {name: (totals[name] - null) / runs for name in PHASES[1:]}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=40, help="invocations of each graph")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        _child(args.runs)
        return 0
    per = measure(args.runs)
    bare = per["bare"]
    print("| graph | instructions per run | × bare | added |")
    print("|---|---:|---:|---:|")
    for name in PHASES[1:]:
        n = per[name]
        print(f"| {name} | {n:,.0f} | {n / bare:.3f} | {n - bare:+,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
