"""Provider events from the client's change counter (issue 10 §2): a publish, a kill, an
override's expiry → ``PROVIDER_CONFIGURATION_CHANGED`` with exactly the keys that
changed; the SQLite store's file moved away → ``PROVIDER_STALE`` (answers keep coming,
reason ``STALE``); back → ``PROVIDER_READY``; a head rev that does not fit the registry
→ ``PROVIDER_ERROR`` (``PARSE_ERROR``). All through a real OpenFeature client's
handlers, with the publisher on its own client and store connection (as another process
would be)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.evaluation_context import EvaluationContext as OFContext
from openfeature.event import EventDetails, ProviderEvent
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason

from flagmw import FlagClient, FlagRegistry, SQLiteStore
from flagmw.openfeature import FlagmwProvider
from flagmw.openfeature.events import changed_keys, document_changes

FLAGS = {
    "tools.refund_api.enabled": {"type": "bool", "default": True, "binding": "hot", "owner": "t"},
    "greeting": {"type": "string", "default": "hello", "owner": "t"},
    "loop.max_iterations": {"type": "int", "default": 8, "min": 1, "max": 50, "owner": "t"},
    "prompt.style": {"type": "enum", "choices": ["v2", "v3"], "default": "v2", "owner": "t"},
}
REGISTRY = FlagRegistry.from_dict({"flags": FLAGS})
DOC: dict[str, Any] = {"values": {"greeting": "hi"}}


class Clock:
    """The real time, moved forward by ``offset`` seconds when a test skips ahead."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


class Setup:
    def __init__(self, tmp: Path) -> None:
        self.db = tmp / "flags.db"
        self.clock = Clock()
        self.admin = FlagClient(REGISTRY, SQLiteStore(self.db, create=True), clock=self.clock)
        self.admin.publish(DOC, author="t", message="rev 1")
        self.client = FlagClient(
            REGISTRY, SQLiteStore(self.db, verify_interval=0), clock=self.clock
        )
        self.provider = FlagmwProvider(self.client)
        self.domain = f"events-{uuid.uuid4().hex[:8]}"
        api.set_provider_and_wait(self.provider, domain=self.domain)
        self.of: OpenFeatureClient = api.get_client(self.domain)
        self.events: list[tuple[ProviderEvent, EventDetails]] = []
        for event in ProviderEvent:
            self.of.add_handler(event, lambda d, e=event: self.events.append((e, d)))
        # a READY handler added to a ready provider runs at once (the SDK runs handlers
        # on its own thread pool): wait for it, then start recording afresh
        self.settle(len(ProviderEvent) - 3)
        self.events.clear()

    def settle(self, n: int, timeout: float = 5.0) -> list[tuple[ProviderEvent, EventDetails]]:
        """Wait until ``n`` events arrived (handlers run on the SDK's threads), then a
        moment more, so that an extra event would be seen too."""
        deadline = time.monotonic() + timeout
        while len(self.events) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)
        return self.events

    def changes(self) -> list[list[str]]:
        return [
            list(d.flags_changed or [])
            for e, d in self.events
            if e is ProviderEvent.PROVIDER_CONFIGURATION_CHANGED
        ]

    def kinds(self) -> list[ProviderEvent]:
        return [e for e, _ in self.events]


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    s = Setup(tmp_path)
    yield s
    api.clear_providers()
    s.client.close()
    s.admin.close()


def test_publish_emits_configuration_changed_with_the_changed_keys(setup: Setup) -> None:
    assert setup.of.get_string_value("greeting", "x") == "hi"
    assert setup.events == []  # nothing changed: no event
    setup.admin.publish(
        {"values": {"greeting": "hi"}, "routes": {"r": {"values": {"loop.max_iterations": 3}}}},
        author="t",
        message="rev 2",
    )
    d = setup.of.get_string_details("greeting", "x")  # the evaluation notices the change
    assert d.flag_metadata["version"] == "2"
    setup.settle(1)
    assert setup.changes() == [["loop.max_iterations"]]
    (_, details) = setup.events[0]
    assert details.metadata["version"] == "2"
    assert details.provider_name == "flagmw"
    # a second evaluation: no second event for the same change
    setup.of.get_string_value("greeting", "x")
    assert len(setup.settle(2, timeout=0.2)) == 1


def test_rules_and_segments_touch_their_keys(setup: Setup) -> None:
    setup.admin.publish(
        {
            "values": {"greeting": "hi"},
            "segments": {"big": {"plan": "enterprise"}},
            "rules": [{"name": "v3", "when": {"segment": "big"}, "set": {"prompt.style": "v3"}}],
        },
        author="t",
        message="rule",
    )
    setup.provider.poll()
    setup.admin.publish(
        {
            "values": {"greeting": "hi"},
            "segments": {"big": {"plan": "pro"}},
            "rules": [{"name": "v3", "when": {"segment": "big"}, "set": {"prompt.style": "v3"}}],
        },
        author="t",
        message="segment",
    )
    setup.provider.poll()
    setup.settle(2)
    assert setup.changes() == [["prompt.style"], ["prompt.style"]]
    assert setup.of.get_string_value("prompt.style", "x", OFContext("u", {"plan": "pro"})) == "v3"


def test_kill_and_its_end_and_an_expiry_emit_the_key(setup: Setup) -> None:
    ov = setup.admin.kill("tools.refund_api.enabled", reason="incident", actor="oncall", ttl="1h")
    d = setup.of.get_boolean_details("tools.refund_api.enabled", True)
    assert (d.value, d.reason, d.flag_metadata["overrideId"]) == (False, Reason.DISABLED, ov.id)
    setup.settle(1)
    assert setup.changes() == [["tools.refund_api.enabled"]]
    setup.admin.end_override(ov.id, actor="oncall", reason="fixed")
    assert setup.of.get_boolean_value("tools.refund_api.enabled", False) is True
    setup.settle(2)
    assert setup.changes()[-1] == ["tools.refund_api.enabled"]
    setup.admin.override("greeting", "hey", reason="promo", actor="ops", ttl="10m")
    setup.provider.poll()
    setup.settle(3)
    assert setup.changes()[-1] == ["greeting"]
    setup.clock.offset += 601  # the override expires: the client's generation moves
    assert setup.of.get_string_value("greeting", "x") == "hi"
    setup.settle(4)
    assert setup.changes() == [
        ["tools.refund_api.enabled"],
        ["tools.refund_api.enabled"],
        ["greeting"],
        ["greeting"],
    ]


def test_a_kill_from_the_command_line_in_another_process(setup: Setup, tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("flagmw")
    cli = [str(script)] if script.is_file() else [sys.executable, "-m", "flagmw.cli"]
    done = subprocess.run(
        [
            *cli,
            "kill",
            "tools.refund_api.enabled",
            "--reason",
            "CRM down",
            "--store",
            str(setup.db),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    setup.provider.poll()  # no evaluation needed: poll() looks and emits
    setup.settle(1)
    assert setup.changes() == [["tools.refund_api.enabled"]]
    d = setup.of.get_boolean_details("tools.refund_api.enabled", True)
    assert (d.value, d.reason) == (False, Reason.DISABLED)


def test_store_moved_away_is_stale_then_ready(setup: Setup, tmp_path: Path) -> None:
    setup.db.rename(tmp_path / "away.db")
    d = setup.of.get_string_details("greeting", "x")
    setup.settle(1)
    assert setup.kinds() == [ProviderEvent.PROVIDER_STALE]
    assert (d.value, d.reason) == ("hi", Reason.STALE)  # the last good config, said so
    assert setup.of.get_provider_status().value == "STALE"
    assert "unreachable" in (setup.events[0][1].message or "")
    # nothing is created in its place; the file comes back
    assert not setup.db.exists()
    (tmp_path / "away.db").rename(setup.db)
    deadline = time.monotonic() + 10
    while setup.of.get_provider_status().value != "READY" and time.monotonic() < deadline:
        setup.clock.offset += 2  # past the client's retry interval
        setup.provider.poll()
        time.sleep(0.05)
    setup.settle(2)
    assert setup.kinds() == [ProviderEvent.PROVIDER_STALE, ProviderEvent.PROVIDER_READY]
    assert setup.of.get_string_details("greeting", "x").reason == Reason.STATIC


def test_a_head_rev_that_does_not_fit_is_an_error_until_fixed(setup: Setup) -> None:
    other = FlagRegistry.from_dict(
        {"flags": {**FLAGS, "only.elsewhere": {"type": "bool", "default": True, "owner": "x"}}}
    )
    with FlagClient(other, SQLiteStore(setup.db)) as publisher:
        publisher.publish(
            {"values": {"greeting": "bonjour", "only.elsewhere": False}}, author="x", message="x"
        )
        d = setup.of.get_string_details("greeting", "x")
        assert (d.value, d.reason) == ("hi", Reason.STALE)  # rev 1 kept
        setup.settle(1)
        assert setup.kinds() == [ProviderEvent.PROVIDER_ERROR]
        assert setup.events[0][1].error_code == ErrorCode.PARSE_ERROR
        assert setup.of.get_provider_status().value == "ERROR"
        publisher.publish({"values": {"greeting": "bonjour"}}, author="x", message="fits")
    d = setup.of.get_string_details("greeting", "x")
    assert (d.value, d.reason) == ("bonjour", Reason.STATIC)
    setup.settle(3)
    # READY and CONFIGURATION_CHANGED are emitted together; the SDK's handler threads
    # may deliver them in either order
    assert setup.kinds()[0] == ProviderEvent.PROVIDER_ERROR
    assert set(setup.kinds()[1:]) == {
        ProviderEvent.PROVIDER_READY,
        ProviderEvent.PROVIDER_CONFIGURATION_CHANGED,
    }
    assert len(setup.kinds()) == 3
    assert setup.changes() == [["greeting"]]


def test_a_stale_client_at_initialize_reports_stale_after_ready(tmp_path: Path) -> None:
    db = tmp_path / "flags.db"
    with FlagClient(REGISTRY, SQLiteStore(db, create=True)) as admin:
        admin.publish(DOC, author="t", message="rev 1")
    client = FlagClient(REGISTRY, SQLiteStore(db, verify_interval=0))
    db.rename(tmp_path / "away.db")
    client.poll()
    provider = FlagmwProvider(client, close_client=True)
    api.set_provider_and_wait(provider, domain="stale-start")
    try:
        of = api.get_client("stale-start")
        assert of.get_provider_status().value == "READY"
        assert of.get_string_details("greeting", "x").reason == Reason.STALE
        assert of.get_provider_status().value == "STALE"
    finally:
        api.clear_providers()  # shutdown closes the client (close_client=True)


# -- the key diff, for all documents -------------------------------------------------------


def key_signatures(document: dict[str, Any]) -> dict[str, str]:
    """The reference (slow, obviously right) form of document_changes: key → the JSON of
    every part of the document that mentions the key; a key changed when its text did."""
    parts: dict[str, list[Any]] = {}
    ruled: set[str] = set()

    def overlay(o: dict[str, Any], where: str) -> None:
        for key, value in o.get("values", {}).items():
            parts.setdefault(key, []).append([where, value])
        for rule in o.get("rules", ()):
            for key, value in rule.get("set", {}).items():
                ruled.add(key)
                entry = [where, rule.get("name"), rule.get("when"), rule.get("rollout"), value]
                parts.setdefault(key, []).append(entry)
        for key in o.get("requires", ()):
            parts.setdefault(key, []).append([where, "requires"])

    overlay(document, "snapshot")
    for section in ("environments", "tenants", "routes"):
        for name, o in document.get(section, {}).items():
            overlay(o, f"{section}:{name}")
    for name, exp in document.get("experiments", {}).items():
        ruled.add(exp["flag"])
        parts.setdefault(exp["flag"], []).append(["experiment", name, exp])
    segments = document.get("segments", {})
    return {
        key: json.dumps([found, segments if key in ruled else None], sort_keys=True)
        for key, found in parts.items()
    }


KEYS = sorted(FLAGS)
small = st.integers(1, 3)
values = st.dictionaries(st.sampled_from(KEYS), small, max_size=3)
rules = st.lists(
    st.builds(
        lambda name, plan, set_: {"name": name, "when": {"plan": plan}, "set": set_},
        st.sampled_from(["r1", "r2"]),
        st.sampled_from(["pro", "ent"]),
        values,
    ),
    max_size=2,
)
overlays = st.fixed_dictionaries(
    {"values": values, "rules": rules, "requires": st.lists(st.sampled_from(KEYS), max_size=1)}
)
documents = st.fixed_dictionaries(
    {
        "values": values,
        "rules": rules,
        "tenants": st.dictionaries(st.sampled_from(["acme", "beta"]), overlays, max_size=2),
        "routes": st.dictionaries(st.sampled_from(["r"]), overlays, max_size=1),
        "experiments": st.dictionaries(
            st.sampled_from(["e1", "e2"]),
            st.fixed_dictionaries({"flag": st.sampled_from(KEYS), "weights": small}),
            max_size=2,
        ),
        "segments": st.dictionaries(st.sampled_from(["big"]), small, max_size=1),
    }
)


@given(documents, documents)
def test_document_changes_agree_with_the_reference(a: dict[str, Any], b: dict[str, Any]) -> None:
    expected = changed_keys(key_signatures(a), key_signatures(b))
    assert document_changes(a, b) == expected
    assert document_changes(a, a) == set()


@given(documents)
def test_one_changed_key_is_exactly_that_key(a: dict[str, Any]) -> None:
    for key in KEYS:
        b = {**a, "values": {**a["values"], key: 99}}
        assert document_changes(a, b) == ({key} if a["values"].get(key) != 99 else set())
