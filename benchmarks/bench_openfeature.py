"""What the OpenFeature provider costs per evaluation, side by side with flagmw's own
call (issue 10 §2).

    .venv/bin/python -m benchmarks.bench_openfeature            # 20 000 samples each
    .venv/bin/python -m benchmarks.bench_openfeature --n 5000

Scenarios, on one SQLite store (a rule on the plan decides the flag):

1. ``client.value(key, ctx)`` — flagmw's evaluation outside a graph (the baseline);
2. ``provider.resolve_string_details(key, default, of_ctx)`` — the provider alone
   (context mapping, the same evaluation, reason, variant, metadata, event check);
3. ``of_client.get_string_details(key, default, of_ctx)`` — through the OpenFeature SDK
   (hooks, context merging, status checks), as an application calls it;
4. 3. inside a run (``use_run``): the answer from the run's pinned RunConfig.

Reported: medians (per call, timer overhead included) and each median's ratio to the
baseline. Then what one change costs the event check (``document_changes``, once per
change, on the thread that notices it) on a snapshot of 100 000 tenants, one of them
changed: the median of 5. Method: ``benchmarks/_timing.py``. Compare ratios within one run.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path

from openfeature import api
from openfeature.evaluation_context import EvaluationContext as OFContext

from benchmarks._timing import markdown_table, measure
from flagmw import EvaluationContext, FlagClient, FlagRegistry, SQLiteStore
from flagmw.langgraph.run import RunState, use_run
from flagmw.openfeature import FlagmwProvider
from flagmw.openfeature.events import document_changes

KEY = "prompt.style"
REGISTRY = {
    "flags": {
        KEY: {"type": "enum", "choices": ["v2", "v3"], "default": "v2", "owner": "bench"},
        "tools.refund_api.enabled": {"type": "bool", "default": True, "owner": "bench"},
    }
}
DOCUMENT = {"rules": [{"name": "ent", "when": {"plan": "enterprise"}, "set": {KEY: "v3"}}]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20_000)
    n = parser.parse_args().n
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "flags.db", create=True)
        client = FlagClient(FlagRegistry.from_dict(REGISTRY), store)
        client.publish(DOCUMENT, author="bench", message="bench")
        provider = FlagmwProvider(client)
        api.set_provider_and_wait(provider, domain="bench")
        of = api.get_client("bench")
        ctx = EvaluationContext(user_id="u-17", plan="enterprise")
        of_ctx = OFContext("u-17", {"plan": "enterprise"})
        assert client.value(KEY, ctx) == "v3"
        assert of.get_string_value(KEY, "x", of_ctx) == "v3"
        rows = [
            measure(
                "openfeature", "client.value (baseline)", lambda c: client.value(KEY, c), [ctx], n=n
            ),
            measure(
                "openfeature",
                "provider.resolve_string_details",
                lambda c: provider.resolve_string_details(KEY, "x", c),
                [of_ctx],
                n=n,
            ),
            measure(
                "openfeature",
                "OpenFeature client.get_string_details",
                lambda c: of.get_string_details(KEY, "x", c),
                [of_ctx],
                n=n,
            ),
        ]
        state = RunState(client=client, rc=client.resolve(ctx), name="bench")
        with use_run(state):
            assert of.get_string_details(KEY, "x", of_ctx).flag_metadata["pinned"] is True
            rows.append(
                measure(
                    "openfeature",
                    "get_string_details inside a run (pinned)",
                    lambda c: of.get_string_details(KEY, "x", c),
                    [of_ctx],
                    n=n,
                )
            )
        api.clear_providers()
        client.close()
    print(markdown_table(rows))
    base = rows[0].median
    print()
    for r in rows:
        print(f"- {r.name}: median {r.median:,.0f} ns, {r.median / base:.1f}× the baseline")
    print(
        f"- document_changes, 100 000 tenants, one changed: {_big_diff_ms():.0f} ms (median of 5)"
    )


def _big_diff_ms(tenants: int = 100_000) -> float:
    doc = {
        "values": {},
        "rules": [],
        "tenants": {
            f"t{i}": {"values": {KEY: "v3", "loop.max_iterations": i % 50 + 1}, "rules": []}
            for i in range(tenants)
        },
    }
    new = copy.deepcopy(doc)
    new["tenants"]["t5"]["values"][KEY] = "v2"
    samples = []
    for _ in range(5):
        t = time.perf_counter()
        assert document_changes(doc, new) == {KEY}
        samples.append((time.perf_counter() - t) * 1000)
    return statistics.median(samples)


if __name__ == "__main__":
    main()
