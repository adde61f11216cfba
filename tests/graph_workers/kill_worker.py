"""Operate the SQLite flag store from another process (what ``flagmw kill`` does).

Usage::

    python kill_worker.py STORE kill KEY REASON      # prints {"id": ..., "reason": ...}
    python kill_worker.py STORE unkill OVERRIDE_ID REASON
"""

from __future__ import annotations

import json
import sys

from flags import make_registry

from flagmw import FlagClient, SQLiteStore


def main() -> None:
    store, action, target, reason = sys.argv[1:5]
    client = FlagClient(make_registry(), SQLiteStore(store), environment="test")
    try:
        if action == "kill":
            ov = client.kill(target, reason=reason, actor="oncall@worker", ttl="1h")
        else:
            ov = client.unkill(target, actor="oncall@worker", reason=reason)
        print(json.dumps({"id": ov.id, "reason": ov.reason, "key": ov.key}))
    finally:
        client.close()


if __name__ == "__main__":
    main()
