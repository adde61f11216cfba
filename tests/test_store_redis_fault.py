"""A fault test of RedisStore on a private ``redis-server`` (127.0.0.1, a free port, AOF
on, in ``tmp_path``) stopped while a client runs and started again:

* the client keeps serving its last good config and reports ``stale`` (within one
  ``stale_after``), never a crash;
* a kill or a publish attempted during the outage is refused with a clear error — never
  reported as done;
* after the restart the client recovers by itself; what was committed before the stop
  survived (AOF), and the kill and publish retried after recovery take effect.

Needs ``redis-server`` on the PATH and ``FLAGMW_TEST_REDIS_URL`` set (the marker that
Redis tests should run); skipped with the reason otherwise.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import snapshot_part

redis = pytest.importorskip("redis")

from flagmw import FlagClient, FlagmwError, FlagRegistry  # noqa: E402
from flagmw.stores.redis import RedisStore  # noqa: E402

KEY = "loop.max_iterations"
REFUND = "tools.refund_api.enabled"
AGENT = "agent.enabled"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateRedis:
    """A ``redis-server`` of this test only, on 127.0.0.1:``port``, data in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--bind", "127.0.0.1",
                "--port", str(self.port),
                "--dir", str(self.folder),
                "--appendonly", "yes",
                "--appendfsync", "always",
                "--save", "",
                "--protected-mode", "yes",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            try:
                with redis.Redis.from_url(self.url, socket_connect_timeout=0.2) as r:
                    r.ping()
                return
            except redis.ConnectionError:
                assert self.proc.poll() is None, "redis-server exited"
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: redis-server fsyncs the AOF and exits
            self.proc.wait(10)
        self.proc = None


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PrivateRedis]:
    if not os.environ.get("FLAGMW_TEST_REDIS_URL"):
        pytest.skip("set FLAGMW_TEST_REDIS_URL (e.g. redis://127.0.0.1:6379/0)")
    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server on the PATH for a private server")
    srv = PrivateRedis(tmp_path)
    srv.start()
    yield srv
    srv.stop()


def _doc(value: int) -> dict[str, Any]:
    doc = snapshot_part()
    doc["values"][KEY] = value
    return doc


def _wait(cond: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_a_stopped_server_stale_but_serving_then_recovered_with_nothing_lost(
    server: PrivateRedis, registry: FlagRegistry
) -> None:
    def open_store(**kw: Any) -> RedisStore:
        return RedisStore(
            server.url,
            app="svc",
            env="prod",
            connect_timeout=1.0,
            poll_interval=0.1,
            stale_after=0.5,
            **kw,
        )

    admin_store = open_store(create=True)
    worker_store = open_store()
    try:
        admin = FlagClient(registry, admin_store)
        worker = FlagClient(registry, worker_store)
        admin.publish(_doc(6), author="a", message="before the outage")
        admin.kill(REFUND, reason="incident", actor="oncall")
        _wait(lambda: worker.poll() >= 0 and worker.snapshot_rev == 1, "the publish")
        _wait(lambda: worker.poll() >= 0 and not worker.is_enabled(REFUND), "the kill")
        assert worker.status().healthy

        server.stop()
        stopped = time.monotonic()
        _wait(lambda: worker.poll() >= 0 and worker.status().stale, "stale", timeout=5)
        assert time.monotonic() - stopped < 2.0, "stale not reported within stale_after"
        status = worker.status()
        assert not status.healthy
        # the last good config, not registry defaults
        assert (worker.snapshot_rev, worker.value(KEY)) == (1, 6)
        assert worker.is_enabled(REFUND) is False
        # a kill or a publish that cannot be committed never reports success
        with pytest.raises(FlagmwError, match="unavailable"):
            admin.kill(AGENT, reason="during the outage", actor="oncall")
        with pytest.raises(FlagmwError, match="unavailable"):
            admin.publish(_doc(7), author="a", message="during the outage")
        for _ in range(20):  # polling during the outage never raises
            worker.poll()

        server.start()  # same port, same folder: the AOF brings the store back
        _wait(lambda: worker.refresh() is not None and worker.status().healthy, "recovery")
        assert (worker.snapshot_rev, worker.value(KEY)) == (1, 6), "nothing lost"
        assert worker.is_enabled(REFUND) is False
        assert [e.action for e in admin_store.audit()] == ["kill.set", "publish"]

        # the operator retries what was refused: it takes effect on the worker
        admin.kill(AGENT, reason="after the outage", actor="oncall")
        admin.publish(_doc(7), author="a", message="after the outage")
        _wait(lambda: worker.poll() >= 0 and worker.snapshot_rev == 2, "the publish")
        _wait(lambda: worker.poll() >= 0 and not worker.is_enabled(AGENT), "the kill")
        assert worker.value(KEY) == 7
        assert worker.status().healthy
    finally:
        worker_store.close()
        admin_store.close()
