"""flagmw adapter for the shared peer harness (``shared/peer_bench/_harness.py``).

The same flag as every peer script, from flagmw's own flags file (``planner.yaml``
next to this script: the registry and a snapshot with two global rules):
``agent-new-planner`` → key ``agent.new_planner``, bool, default False;
``plan == enterprise`` → True; otherwise a 25 % sticky rollout on the user id → True
(murmur3-32 of ``"rollout-25:<user_id>"`` in basis points, see ``flagmw.bucketing``).

The client is the real default: ``FlagClient`` on a ``SQLiteStore`` file (in a
temporary folder), the snapshot published through ``client.publish`` like a user
would. No network.

Modes:

1. ``client.is_enabled(key, ctx)`` — the **resolve path**: a change check on the store,
   then one flag resolved (the first evaluation of a run, or code outside a graph).
   Compare with the SDK rows.
2. the same on a ``MemoryStore`` (no shared-memory counter to read).
3. ``client.resolve(ctx)[key]`` — the whole RunConfig of the 1-flag registry (what the
   LangGraph wrapper does once at run start), then the read.
4. ``client.resolve(ctx).config_hash`` + read — run start including the config hash
   the wrapper stores in the checkpoint.
5. **pinned read**: ``rc[key]`` from the run's RunConfig. As in the reference floor's
   pinned row, the "ctx" is the RunConfig, so the harness's ctx+eval column is
   ``EvaluationContext`` + ``client.resolve(ctx)`` + the read. Compare with
   ``reference floor / pinned snapshot read``.

Run it with the peers through ``run_peers.py``; alone::

    PEER_BENCH_DIR=../shared/peer_bench .bench-venv/bin/python \
        benchmarks/peer_bench/bench_flagmw.py

The harness is imported first and **by path** (``PEER_BENCH_DIR``, default
``<repo>/../shared/peer_bench``), unmodified, so ``setup_ms`` covers flagmw's import,
the registry load, the store's creation and the publish.
"""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
PEER_DIR = os.environ.get("PEER_BENCH_DIR") or os.path.normpath(
    os.path.join(_HERE, "..", "..", "..", "shared", "peer_bench")
)
sys.path.insert(0, PEER_DIR)
import _harness as H  # noqa: E402

H.quiet_logging()

import tempfile  # noqa: E402

from flagmw import EvaluationContext, FlagClient, FlagRegistry, MemoryStore, SQLiteStore  # noqa: E402

KEY = "agent.new_planner"
FLAGS_FILE = os.path.join(_HERE, "planner.yaml")


def _client(store):
    registry = FlagRegistry.from_yaml(FLAGS_FILE)
    client = FlagClient(registry, store, environment="production")
    client.publish(FLAGS_FILE, author="bench@flagmw", message="peer benchmark flag")
    return client


def main():
    version = H.pkg_version("flagmw")
    ctx = lambda u, p: EvaluationContext(user_id=u, plan=p)
    with tempfile.TemporaryDirectory(prefix="flagmw-peer-bench-") as tmp:
        client = _client(SQLiteStore(os.path.join(tmp, "flagmw.db")))
        is_enabled = client.is_enabled
        resolve = client.resolve
        H.run(
            "flagmw",
            version,
            ctx,
            lambda c: is_enabled(KEY, c),
            mode="client.is_enabled (resolve path), SQLiteStore",
            notes="change check on the store + one flag resolved; pure Python + mmh3",
        )
        H.run(
            "flagmw",
            version,
            ctx,
            lambda c: resolve(c)[KEY],
            mode="client.resolve(ctx)[key], 1-flag RunConfig, SQLiteStore",
            notes="the run-start resolution of the whole registry, then the read",
        )
        H.run(
            "flagmw",
            version,
            ctx,
            lambda c: _with_hash(resolve(c)),
            mode="client.resolve(ctx) + config_hash + read, SQLiteStore",
            notes="run start as the LangGraph wrapper does it (hash stored in the checkpoint)",
        )
        H.run(
            "flagmw",
            version,
            lambda u, p: resolve(EvaluationContext(user_id=u, plan=p)),
            lambda rc: rc[KEY],
            mode="pinned read: rc[key] from the run's RunConfig",
            notes="ctx+eval column = EvaluationContext + client.resolve(ctx) + read",
        )
        client.close()
    memory = _client(MemoryStore())
    mem_is_enabled = memory.is_enabled
    H.run(
        "flagmw",
        version,
        ctx,
        lambda c: mem_is_enabled(KEY, c),
        mode="client.is_enabled (resolve path), MemoryStore",
        notes="as mode 1 without the shared-memory change counter",
    )


def _with_hash(rc):
    rc.config_hash  # noqa: B018  (computed and cached, as the wrapper does at run start)
    return rc[KEY]


if __name__ == "__main__":
    main()
