"""Shared fixtures of the flagmw test suite.

* :data:`FLAGS_YAML` — the flags file of DESIGN §9 (a registry and a snapshot in one file).
* ``registry`` — its registry; ``snapshot_document`` — a fresh copy of its snapshot part.
* ``clock`` — a :class:`FixedClock` to inject as ``FlagClient(clock=...)``.
* ``make_client`` — ``make_client(tmp_path, ...)`` builds a :class:`~flagmw.FlagClient` on a
  real :class:`~flagmw.SQLiteStore` file and closes every store it made at teardown.
* ``memory_client`` — the same on a :class:`~flagmw.MemoryStore`.

Tests that need a server (PostgreSQL, Redis) read its URL from ``FLAGMW_TEST_POSTGRES_URL``
/ ``FLAGMW_TEST_REDIS_URL`` and skip with a reason naming the variable when it is unset. CI
sets ``FLAGMW_REQUIRE_SERVERS=1``: then such a skip is reported as a failure (the hook at
the end of this file), so a missing server can never pass silently.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Generator, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import settings

from flagmw import FlagClient, FlagRegistry, MemoryStore, SQLiteStore

# Speed is measured in benchmarks/, never in tests: no per-example time limit, so a
# loaded CI machine cannot fail a property test by being slow.
settings.register_profile("flagmw", deadline=None)
settings.load_profile("flagmw")

#: The flags file of DESIGN §9 (``agent.enabled`` is declared a run kill, as its
#: description says).
FLAGS_YAML = """\
flags:                                   # the registry
  tools.refund_api.enabled: {type: bool, default: true, binding: hot, owner: payments, description: Refund tool gate}
  agent.enabled:            {type: bool, default: true, binding: hot, run_kill: true, owner: platform, description: Run kill (drains runs)}
  model.primary:            {type: enum, choices: [gpt-4o, gpt-4o-mini], default: gpt-4o, owner: platform, description: Primary model route}
  model.fallbacks:          {type: json, schema: {type: array, items: {type: string}}, default: [], owner: platform, description: Fallback ladder}
  loop.max_iterations:      {type: int, min: 1, max: 50, default: 8, binding: hot, owner: platform, description: Agent loop cap}
  compliance.pii_redaction: {type: bool, default: true, protected: true, owner: security, description: Redact PII in tool output}
  prompt.style:             {type: enum, choices: [v2, v3], default: v2, owner: ux, expires: 2099-03-01, description: Style prompt version}

environments:                            # layer 2
  staging:    {model.primary: gpt-4o-mini}
values:                                  # layer 3: global
  model.fallbacks: [gpt-4o-mini]
rules:                                   # layer 3: global rules, first match per key wins
  - name: enterprise-v3
    when: {plan: {in: [enterprise]}}
    set: {prompt.style: v3}
tenants:                                 # layer 4
  acme:
    values: {model.primary: gpt-4o-mini}
    requires: [compliance.pii_redaction]
routes:                                  # layer 5
  refund-assistant:
    values: {loop.max_iterations: 4}
experiments:                             # layer 6
  style-v3-rollout:
    flag: prompt.style
    unit: user                           # user | tenant | thread | run
    when: {plan: {in: [free, pro]}}
    variants: {control: v2, treatment: v3}
    weights: {control: 75, treatment: 25}
"""  # noqa: E501  (kept as in DESIGN §9, one flag a line)

#: 2023-11-14T22:13:20Z: a round start time for injected clocks.
T0 = 1_700_000_000.0


class FixedClock:
    """A clock that only moves when told to: ``FlagClient(registry, store, clock=clock)``.

    Calling it returns the current time in seconds since the epoch (a float).
    """

    def __init__(self, start: float = T0) -> None:
        self.now = float(start)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        """Move the clock forward by ``seconds`` and return the new time."""
        self.now += seconds
        return self.now

    def set(self, t: float) -> float:
        """Set the clock to ``t`` (seconds since the epoch) and return it."""
        self.now = float(t)
        return self.now

    def __repr__(self) -> str:
        return f"FixedClock({self.now!r})"


def flags_data() -> dict[str, Any]:
    """The DESIGN §9 file parsed (registry and snapshot)."""
    data: dict[str, Any] = yaml.safe_load(FLAGS_YAML)
    return data


def snapshot_part() -> dict[str, Any]:
    """The snapshot sections of the DESIGN §9 file (everything but ``flags:``)."""
    data = flags_data()
    data.pop("flags")
    return data


@pytest.fixture(scope="session")
def registry() -> FlagRegistry:
    """The registry of DESIGN §9."""
    return FlagRegistry.from_dict(flags_data())


@pytest.fixture
def snapshot_document() -> dict[str, Any]:
    """A fresh (mutable) copy of the DESIGN §9 snapshot document."""
    return copy.deepcopy(snapshot_part())


@pytest.fixture
def flags_file(tmp_path: Path) -> Path:
    """The DESIGN §9 flags file written to ``tmp_path/flags.yaml``."""
    path = tmp_path / "flags.yaml"
    path.write_text(FLAGS_YAML, encoding="utf-8")
    return path


@pytest.fixture
def clock() -> FixedClock:
    """A :class:`FixedClock` at :data:`T0`."""
    return FixedClock()


MakeClient = Callable[..., FlagClient]


@pytest.fixture
def make_client(tmp_path: Path, registry: FlagRegistry, clock: FixedClock) -> Iterator[MakeClient]:
    """A factory of SQLite-backed clients.

    ``make_client(path=tmp_path, *, registry=..., clock=..., environment="production",
    document=None, store_options=None, **client_options)``: ``path`` is a folder (the
    store is ``path/flagmw.db``) or a ``.db`` file; several clients made with the same
    path share one store file. ``document`` (a mapping or a file) is published first
    when given. Every store is closed at teardown.
    """
    made: list[FlagClient] = []

    def make(
        path: str | os.PathLike[str] | None = None,
        *,
        registry: FlagRegistry = registry,
        clock: Callable[[], float] = clock,
        environment: str = "production",
        document: Mapping[str, Any] | str | os.PathLike[str] | None = None,
        store_options: Mapping[str, Any] | None = None,
        **client_options: Any,
    ) -> FlagClient:
        where = Path(path) if path is not None else tmp_path
        db = where if where.suffix == ".db" else where / "flagmw.db"
        store = SQLiteStore(db, **{"create": True, "clock": clock, **dict(store_options or {})})
        client = FlagClient(registry, store, environment=environment, clock=clock, **client_options)
        made.append(client)
        if document is not None:
            client.publish(document, author="fixture", message="fixture snapshot")
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def memory_client(registry: FlagRegistry, clock: FixedClock) -> MakeClient:
    """A factory of MemoryStore-backed clients, same options as ``make_client``
    (without ``path``)."""

    def make(
        *,
        registry: FlagRegistry = registry,
        clock: Callable[[], float] = clock,
        environment: str = "production",
        document: Mapping[str, Any] | str | os.PathLike[str] | None = None,
        **client_options: Any,
    ) -> FlagClient:
        client = FlagClient(
            registry,
            MemoryStore(clock=clock),
            environment=environment,
            clock=clock,
            **client_options,
        )
        if document is not None:
            client.publish(document, author="fixture", message="fixture snapshot")
        return client

    return make


# -- checkpointers -------------------------------------------------------------------


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def saver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A real LangGraph checkpointer, once per kind: InMemorySaver, SqliteSaver on a file,
    PostgresSaver (``FLAGMW_TEST_POSTGRES_URL``; skipped with the reason when unset)."""
    if request.param == "memory":
        from langgraph.checkpoint.memory import InMemorySaver

        yield InMemorySaver()
    elif request.param == "sqlite":
        from langgraph.checkpoint.sqlite import SqliteSaver

        with SqliteSaver.from_conn_string(str(tmp_path / "checkpoints.sqlite")) as s:
            yield s
    else:
        url = os.environ.get("FLAGMW_TEST_POSTGRES_URL")
        if not url:
            pytest.skip("set FLAGMW_TEST_POSTGRES_URL (e.g. postgresql://postgres@127.0.0.1/test)")
        from langgraph.checkpoint.postgres import PostgresSaver

        with PostgresSaver.from_conn_string(url) as s:
            s.setup()
            yield s


# -- servers required in CI ----------------------------------------------------------

_SERVER_MARKERS = ("FLAGMW_TEST_POSTGRES_URL", "FLAGMW_TEST_REDIS_URL")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Generator[Any]:
    outcome = yield
    if os.environ.get("FLAGMW_REQUIRE_SERVERS") != "1":
        return
    report = outcome.get_result()
    if not report.skipped or hasattr(report, "wasxfail"):
        return
    longrepr = report.longrepr
    reason = str(longrepr[-1]) if isinstance(longrepr, tuple) else str(longrepr)
    if any(marker in reason for marker in _SERVER_MARKERS):
        report.outcome = "failed"
        report.longrepr = (
            f"FLAGMW_REQUIRE_SERVERS=1 but a server test was skipped: {reason}. "
            "Start the server (see .ci/run) or unset FLAGMW_REQUIRE_SERVERS."
        )
