"""Loading a big flags file (issue 9 item 3): a 100k-tenant YAML file (~50 MB) parsed by
flagmw's loader with libyaml's C composer (``yaml.CSafeLoader``, used when installed) and,
side by side in the same run, with the pure-Python composer it used before — plus the
whole ``validate_document`` on the C path.

    .venv/bin/python -m benchmarks.bench_load [--tenants 100000] [--rounds 3]

Reported: the file size, the median of ``--rounds`` wall times per path, and the ratio.
The document limits (``flagmw.core.limits``) admit the file with their defaults.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import yaml

from benchmarks._timing import machine_info
from flagmw.core import source
from flagmw.core.registry import FlagRegistry
from flagmw.core.snapshot import validate_document

FLAGS = """\
flags:
  model.primary: {type: enum, choices: [gpt-4o, gpt-4o-mini], default: gpt-4o, owner: p}
  loop.max_iterations: {type: int, default: 8, min: 1, max: 50, owner: p}
  tools.refund_api.enabled: {type: bool, default: true, binding: hot, owner: p}
"""


def write_file(path: Path, tenants: int) -> None:
    with path.open("w") as f:
        f.write(FLAGS)
        f.write("tenants:\n")
        for i in range(tenants):
            model = "gpt-4o-mini" if i % 3 else "gpt-4o"
            f.write(
                f"  tenant-{i:06d}:\n"
                f"    values: {{model.primary: {model}, loop.max_iterations: {1 + i % 40}}}\n"
                f"    rules:\n"
                f"      - name: big-seats\n"
                f"        when: {{seats: {{gt: {i % 500}}}}}\n"
                f"        set: {{tools.refund_api.enabled: false}}\n"
            )


def _time(fn: object, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    opts = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.yaml"
        write_file(path, opts.tenants)
        size = path.stat().st_size
        text = path.read_text()
        registry = FlagRegistry.from_yaml(path)

        def c_load() -> None:
            source.load_text(text, str(path))

        def py_load() -> None:
            saved = source._COMPOSE_LOADER
            source._COMPOSE_LOADER = yaml.SafeLoader
            try:
                source.load_text(text, str(path))
            finally:
                source._COMPOSE_LOADER = saved

        def validate() -> None:
            validate_document(path, registry)

        c = _time(c_load, opts.rounds)
        py = _time(py_load, max(1, opts.rounds // 3))
        v = _time(validate, opts.rounds)
    info = machine_info()
    print(f"file: {opts.tenants:,} tenants, {size / 1e6:.1f} MB")
    print("| path | median wall |")
    print("|---|---:|")
    print(f"| load, pure-Python composer (before) | {py:.2f} s |")
    print(f"| load, libyaml C composer (now) | {c:.2f} s |")
    print(f"| validate_document (load + validate), C composer | {v:.2f} s |")
    print(
        f"\nspeed-up of the load: {py / c:.1f}x. {info['date']}, {info['cpu']}, "
        f"Python {info['python']}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
