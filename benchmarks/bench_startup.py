"""Start-up cost of flagmw in a fresh process (issue 7, §5 "Speed").

    .venv/bin/python -m benchmarks.bench_startup              # 21 interleaved rounds
    .venv/bin/python -m benchmarks.bench_startup --n 51 --json startup.json
    .venv/bin/python -m benchmarks.bench_startup --check      # exit 1 when a target is missed

Targets, both as a ratio to an empty interpreter (``python -c pass``) measured in the same
run:

1. ``python -c 'import flagmw'`` ≤ 3×.
2. ``flagmw kill KEY --reason … --ttl 1m`` start to exit ≤ 6× (an on-call engineer runs it
   in an incident). Measured twice: in a folder with the application's ``flags.yaml``
   (the registry parsed from YAML) and in an empty folder, where the command uses the
   registry stored with the head snapshot (an operator without the source tree). Each run
   really sets a kill in a real SQLite store file (prepared, untimed, with
   ``flagmw init`` + ``flagmw publish``).

``flagmw kill`` runs through the standard-library parser of ``flagmw.cli.incident`` (the
console script picks it before importing typer). Reference rows (no target):

* ``typer floor``: a one-command typer app with the options of ``kill`` (a key argument,
  four string options, a flag), parsing them and printing a line — the least any typer CLI
  pays. typer ≥ 0.2x builds a pydantic ``TypeAdapter`` per parameter at parse time (so
  every typer command imports pydantic).
* ``flagmw kill via typer``: the same kill through the typer app
  (``flagmw.cli.app.main``, what ``flagmw kill`` ran before the fast path).
* ``import flagmw.client.client``: the client's import alone, which the kill needs
  (registry, snapshot compilation, the SQLite store). ``flagmw.client`` itself imports
  its names on first use.
* ``import pydantic, jsonschema``: what the kill loaded before it read a well-formed
  registry without pydantic (``flag_spec.plain_flag_fields``), deferred the JSON-schema
  checks of ``json`` flags (``check_schemas=False``) and left the snapshot models
  unimported when the head's registry is the client's; the kill loads neither now
  (``tests/test_startup.py`` checks it).
* ``import yaml``: the one third-party library the kill still loads, to parse
  ``./flags.yaml`` (not with the stored registry, which is JSON).
* ``store write floor``: open the SQLite store and write one kill with
  ``Store.add_override`` (its audit entry included), no registry, no client, no command
  line — what a kill costs at the least.

Bytecode: the package is byte-compiled before timing (``compileall``, untimed), as an
installed wheel is; without it a checkout run with ``PYTHONDONTWRITEBYTECODE=1`` compiles
every flagmw module from source on every start.

Method: every command runs as a whole process (``subprocess``, output discarded), in
rounds that run every command once, in turn, so a drift of the machine's speed hits all of
them alike; two untimed warm-up rounds first. Reported per command: the median wall time
(``time.perf_counter`` around the process) and CPU time (user + system of the child, from
``resource.getrusage(RUSAGE_CHILDREN)``), and the median of the per-round ratios to
``python -c pass``. On a shared, noisy machine read the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._timing import machine_info

KEY = "tools.refund_api.enabled"


def _flagmw_command() -> list[str]:
    """The ``flagmw`` console script next to this interpreter (what users run)."""
    script = Path(sys.executable).with_name("flagmw")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from flagmw.cli import main; main()"]


def _prepare(root: Path) -> tuple[Path, Path]:
    """A folder with flags.yaml and a published store, and an empty folder whose
    ``FLAGMW_STORE`` points at the same store (untimed)."""
    with_file = root / "app"
    bare = root / "oncall"
    with_file.mkdir()
    bare.mkdir()
    import compileall

    import flagmw as package

    compileall.compile_dir(str(Path(package.__file__).parent), quiet=1)
    (root / "typer_floor.py").write_text(TYPER_FLOOR)
    flagmw = _flagmw_command()
    for args in (["init", "."], ["publish", "flags.yaml", "--message", "bench"]):
        subprocess.run(
            [*flagmw, *args], cwd=with_file, check=True, stdout=subprocess.DEVNULL, env=_env()
        )
    return with_file, bare


TYPER_FLOOR = """
import typer

app = typer.Typer(add_completion=False)


@app.command()
def kill(
    key: str,
    reason: str = typer.Option(...),
    ttl: str = typer.Option("1h"),
    tenant: str = typer.Option(""),
    route: str = typer.Option(""),
    force: bool = typer.Option(False),
) -> None:
    print("kill", key, reason, ttl)


@app.command()
def unkill(override_id: str) -> None:
    print(override_id)


app()
"""


STORE_FLOOR = """
import sys, time
from flagmw.core.overrides import Override, OverrideKind, ScopeKind
from flagmw.stores.sqlite import SQLiteStore

store = SQLiteStore(sys.argv[1])
now = time.time()
store.add_override(
    Override(
        id="", key="tools.refund_api.enabled", value=False, kind=OverrideKind.KILL,
        scope=ScopeKind.GLOBAL, target=None, reason="bench", actor="bench", created_at=now,
        expires_at=now + 60, force=False, environment=None,
    )
)
store.close()
"""


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLAGMW_", "FF_"))}
    env.update(extra)
    return env


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """One process: (wall seconds, CPU seconds of the child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(args, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({done.returncode}): {done.stderr.decode()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=21, help="timed rounds (default 21)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    opts = parser.parse_args(argv)

    root = Path(tempfile.mkdtemp(prefix="flagmw-startup-"))
    try:
        with_file, bare = _prepare(root)
        store = str(with_file / "flagmw.db")
        kill_args = ["kill", KEY, "--reason", "bench", "--ttl", "1m"]
        kill = [*_flagmw_command(), *kill_args]
        via_typer = [sys.executable, "-c", "from flagmw.cli.app import main; main()", *kill_args]
        commands: list[tuple[str, list[str], Path, dict[str, str], float | None]] = [
            ("python -c pass", [sys.executable, "-c", "pass"], root, _env(), None),
            (
                "python -c 'import flagmw'",
                [sys.executable, "-c", "import flagmw"],
                root,
                _env(),
                3.0,
            ),
            (
                "typer floor (reference)",
                [sys.executable, str(root / "typer_floor.py"), "kill", KEY, "--reason", "b"],
                root,
                _env(),
                None,
            ),
            (
                "import flagmw.client.client (reference)",
                [sys.executable, "-c", "import flagmw.client.client"],
                root,
                _env(),
                None,
            ),
            (
                "import pydantic, jsonschema (reference)",
                [sys.executable, "-c", "import pydantic, jsonschema"],
                root,
                _env(),
                None,
            ),
            (
                "import yaml (reference)",
                [sys.executable, "-c", "import yaml"],
                root,
                _env(),
                None,
            ),
            (
                "store write floor (reference)",
                [sys.executable, "-c", STORE_FLOOR, store],
                root,
                _env(),
                None,
            ),
            ("flagmw kill via typer (reference)", via_typer, with_file, _env(), None),
            ("flagmw kill (./flags.yaml)", kill, with_file, _env(), 6.0),
            ("flagmw kill (stored registry)", kill, bare, _env(FLAGMW_STORE=store), 6.0),
        ]
        walls: dict[str, list[float]] = {name: [] for name, *_ in commands}
        cpus: dict[str, list[float]] = {name: [] for name, *_ in commands}
        for i in range(opts.n + 2):
            for name, args, cwd, env, _ in commands:
                wall, cpu = _run(args, cwd, env)
                if i >= 2:  # two warm-up rounds
                    walls[name].append(wall)
                    cpus[name].append(cpu)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    base = commands[0][0]
    rows: list[dict[str, Any]] = []
    missed = False
    for name, _, _, _, target in commands:
        ratios = [w / b for w, b in zip(walls[name], walls[base], strict=True)]
        cpu_ratios = [c / b for c, b in zip(cpus[name], cpus[base], strict=True) if b > 0]
        ratio = statistics.median(ratios)
        verdict = ""
        if target is not None:
            verdict = "PASS" if ratio <= target else "MISS"
            missed = missed or verdict == "MISS"
        rows.append(
            {
                "command": name,
                "wall_ms_median": statistics.median(walls[name]) * 1000,
                "wall_ms_min": min(walls[name]) * 1000,
                "cpu_ms_median": statistics.median(cpus[name]) * 1000,
                "ratio_wall_median": ratio,
                "ratio_cpu_median": statistics.median(cpu_ratios) if cpu_ratios else None,
                "target_ratio": target,
                "verdict": verdict,
            }
        )

    head = ("command", "wall median", "wall min", "CPU median", "× pass (wall)", "× pass (CPU)")
    print("| " + " | ".join(head) + " | target | |")
    print("|---" * (len(head) + 2) + "|")
    for r in rows:
        cpu_ratio = "-" if r["ratio_cpu_median"] is None else f"{r['ratio_cpu_median']:.2f}×"
        target = "" if r["target_ratio"] is None else f"≤ {r['target_ratio']:g}×"
        print(
            f"| {r['command']} | {r['wall_ms_median']:.1f} ms | {r['wall_ms_min']:.1f} ms | "
            f"{r['cpu_ms_median']:.1f} ms | {r['ratio_wall_median']:.2f}× | {cpu_ratio} | "
            f"{target} | {r['verdict']} |"
        )
    info = machine_info()
    print(
        f"\n{opts.n} interleaved rounds after 2 warm-up rounds; ratios are medians of the "
        f"per-round ratios. {info['date']}, {info['cpu']} ×{info['cores']}, load "
        f"{info['loadavg'][0]:.2f}, Python {info['python']}, flagmw {info['flagmw_commit']}"
    )
    if opts.json is not None:
        opts.json.parent.mkdir(parents=True, exist_ok=True)
        opts.json.write_text(json.dumps({"machine": info, "rows": rows}, indent=2) + "\n")
    return 1 if opts.check and missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
