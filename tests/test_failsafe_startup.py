"""A client that has never loaded a snapshot does not silently serve registry defaults
(issue 8 §1): with its store unreachable at start-up it starts from its last-known-good
file (reporting stale), or keeps trying for ``startup_timeout`` seconds and then raises.
The store is real and really unreachable: a SQLite file whose content is not a store at
start, and a private Redis server that is stopped."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from flagmw import FlagClient, FlagRegistry, SQLiteStore, StoreUnavailableError
from flagmw.client.last_good import load_last_good

REGISTRY = FlagRegistry.from_dict(
    {
        "flags": {
            "tools.refund_api.enabled": {"type": "bool", "default": True, "owner": "t"},
            "loop.max_iterations": {"type": "int", "default": 8, "owner": "t"},
        }
    }
)


def test_the_last_good_file_is_written_on_change_and_verified(tmp_path: Path) -> None:
    cache = tmp_path / "last-good.json"
    with SQLiteStore(tmp_path / "s.db", create=True) as store:
        client = FlagClient(REGISTRY, store, last_good_file=cache)
        assert not cache.exists()  # nothing served yet that a store did not say
        client.publish({"values": {"loop.max_iterations": 3}}, author="a", message="m")
        kill = client.kill("tools.refund_api.enabled", reason="r", actor="a")
        last = load_last_good(cache, REGISTRY.fingerprint)
        assert last is not None
        assert last.info is not None
        assert last.info.rev == 1
        assert [o.id for o in last.overrides] == [kill.id]
        # an edited file, or one saved for another registry, is never used
        data = json.loads(cache.read_text())
        data["document"]["values"]["loop.max_iterations"] = 50
        cache.write_text(json.dumps(data))
        assert load_last_good(cache, REGISTRY.fingerprint) is None
        client.unkill(kill.id, reason="ok", actor="a")
        assert load_last_good(cache, "sha256:another-registry") is None
        assert load_last_good(cache, REGISTRY.fingerprint) is not None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def redis_server(tmp_path: Path) -> tuple[str, subprocess.Popen[bytes]]:
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.fail("redis-server is not installed (the CI machine runs one)")
    port = _free_port()
    proc = subprocess.Popen(
        [
            exe,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0", proc
    proc.kill()
    proc.wait(timeout=10)


def test_a_client_starting_while_its_store_is_down(
    redis_server: tuple[str, subprocess.Popen[bytes]],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from flagmw.stores.redis import RedisStore

    url, proc = redis_server
    cache = tmp_path / "last-good.json"
    store = RedisStore(url, app="t", env="prod", create=True, poll_interval=0.2)
    first = FlagClient(REGISTRY, store, last_good_file=cache)
    first.publish({"values": {"loop.max_iterations": 3}}, author="a", message="m")
    first.kill("tools.refund_api.enabled", reason="CRM down", actor="oncall")
    first.close()
    # a new worker's store object, then its server goes down before the client loads
    down = RedisStore(url, app="t", env="prod", poll_interval=0.2)
    proc.kill()
    proc.wait(timeout=10)
    # from the last-known-good file: the kill and rev 1, stale
    worker = FlagClient(REGISTRY, down, last_good_file=cache, startup_timeout=0)
    assert worker.is_enabled("tools.refund_api.enabled") is False
    assert worker.value("loop.max_iterations") == 3
    st = worker.status()
    assert (st.snapshot_rev, st.healthy, st.stale) == (1, False, True)
    assert any("serving the last-known-good config" in r.getMessage() for r in caplog.records)
    # without a file: a bounded wait, then an error — never the registry defaults
    t0 = time.monotonic()
    with pytest.raises(StoreUnavailableError, match="refusing to serve registry defaults"):
        FlagClient(REGISTRY, down, startup_timeout=0.5)
    assert time.monotonic() - t0 >= 0.5
