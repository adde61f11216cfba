"""A run interrupted on one worker process and resumed on another, sharing a PostgreSQL
checkpointer (``langgraph-checkpoint-postgres``) and a :class:`PostgresStore`, with a
publish in between: the resumed run gets the identical RunConfig (same rev, pinned
values and ``config_hash``), while the new worker's client knows the newer head.

Real processes (``subprocess``), a real LangGraph graph (``a → b → c``, ``b`` calls
``interrupt()``), a real server (``FLAGMW_TEST_POSTGRES_URL``); the test's private
schemas (flag store, checkpoints) are dropped at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

psycopg = pytest.importorskip("psycopg")
pytest.importorskip("langgraph.checkpoint.postgres")

from graph_workers.support import make_registry, publish, rev_of  # noqa: E402

from flagmw import FlagClient  # noqa: E402
from flagmw.stores.postgres import PostgresStore  # noqa: E402

WORKERS = Path(__file__).parent / "graph_workers"

WORKER = textwrap.dedent(
    """
    import json, os, sys
    sys.path.insert(0, sys.argv[1])
    from langgraph.checkpoint.postgres import PostgresSaver
    from langgraph.types import Command, interrupt
    from support import linear_graph, make_registry

    import flagmw
    from flagmw import FlagClient
    from flagmw.stores.postgres import PostgresStore

    _, url, schema, checkpoints, thread, mode = sys.argv[1:7]
    client = FlagClient(make_registry(), PostgresStore(url, schema=schema), environment="test")


    def approve(name, seen):
        return {"answer": interrupt("approve the refund?"), "pid": os.getpid()}


    def mark(name, seen):
        return {"pid": os.getpid()}


    config = {"configurable": {"thread_id": thread, "tenant_id": "acme"}}
    with PostgresSaver.from_conn_string(checkpoints) as saver:
        if mode == "start":
            saver.setup()
        graph = flagmw.wrap(
            linear_graph(("a", "b", "c"), {"a": mark, "b": approve, "c": mark},
                         checkpointer=saver),
            client,
            tracer=False,
        )
        if mode == "start":
            result = graph.invoke({"log": []}, config)
            interrupted = [i.value for i in result.get("__interrupt__", ())]
        else:
            result = graph.invoke(Command(resume="approved"), config)
            interrupted = []
        status = client.status()
        print(json.dumps({
            "log": result["log"],
            "interrupted": interrupted,
            "next": list(graph.get_state(config).next),
            "head_rev": status.head_rev,
            "healthy": status.healthy,
        }))
    """
)


@pytest.fixture
def url() -> str:
    value = os.environ.get("FLAGMW_TEST_POSTGRES_URL")
    if not value:
        pytest.skip("set FLAGMW_TEST_POSTGRES_URL (e.g. postgresql://postgres@127.0.0.1/test)")
    return value


@pytest.fixture
def schemas(url: str) -> Iterator[tuple[str, str]]:
    """A private flag-store schema and a private checkpoint schema, dropped at the end."""
    tag = uuid.uuid4().hex[:12]
    names = (f"t_flags_{tag}", f"t_ckpt_{tag}")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{names[1]}"')
    yield names
    with psycopg.connect(url, autocommit=True) as conn:
        for name in names:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def _checkpoint_url(url: str, schema: str) -> str:
    """``url`` whose sessions put the checkpointer's tables in ``schema``."""
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options={quote(f'-csearch_path={schema}')}"


def _worker(tmp_path: Path, url: str, schemas: tuple[str, str], thread: str, mode: str) -> Any:
    script = tmp_path / "pg_worker.py"
    script.write_text(WORKER, encoding="utf-8")
    proc = subprocess.run(
        [
            sys.executable,
            str(script),
            str(WORKERS),
            url,
            schemas[0],
            _checkpoint_url(url, schemas[1]),
            thread,
            mode,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_a_run_interrupted_on_one_worker_resumes_on_another_with_the_same_config(
    tmp_path: Path, url: str, schemas: tuple[str, str]
) -> None:
    with PostgresStore(url, schema=schemas[0], create=True) as store:
        operator = FlagClient(make_registry(), store, environment="test")
        assert publish(operator, 1) == 1
        thread = f"thread-{uuid.uuid4().hex[:8]}"

        started = _worker(tmp_path, url, schemas, thread, "start")
        assert started["interrupted"] == ["approve the refund?"]
        assert started["next"] == ["b"]
        assert [o["node"] for o in started["log"]] == ["a"]

        assert publish(operator, 2) == 2  # between the two workers

        resumed = _worker(tmp_path, url, schemas, thread, "resume")
    assert resumed["head_rev"] == 2, "the resuming worker knows the newer snapshot"
    assert resumed["healthy"] is True
    assert resumed["next"] == []
    log = resumed["log"]
    assert [o["node"] for o in log] == ["a", "b", "c"]
    first, later = log[0], log[1:]
    assert len({first["pid"], *(o["pid"] for o in later)}) == 2, "two processes"
    assert log[1]["answer"] == "approved"
    for seen in later:
        assert seen["resumed"] is True
        assert seen["rev"] == first["rev"] == 1
        assert seen["pinned"] == first["pinned"]
        assert rev_of(seen["pinned"]) == 1
        assert seen["pinned_hash"] == first["pinned_hash"]
        assert seen["hash"] == first["hash"], "identical RunConfig (hot values unchanged)"
