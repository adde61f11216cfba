"""The OpenFeature specification's Gherkin suites (copied verbatim beside this file, with
their licence) run with pytest-bdd against FlagmwProvider, loaded from the suites'
``test-flags.json`` into a flagmw registry and snapshot on a real SQLite store
(:mod:`of_loader`). Scenarios that cannot apply are skipped with the reason
(``conftest.NOT_APPLICABLE``; docs/openfeature.md lists them)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.evaluation_context import EvaluationContext as OFContext
from openfeature.flag_evaluation import FlagEvaluationDetails, FlagEvaluationOptions
from openfeature.hook import Hook, HookContext
from pytest_bdd import given, parsers, scenarios, then, when

from conformance.openfeature.of_loader import Loaded, load
from flagmw import FlagClient, FlagRegistry, SQLiteStore
from flagmw.openfeature import FlagmwProvider

HERE = Path(__file__).parent
FLAGS_FILE = HERE / "test-flags.json"

scenarios(
    "evaluation.feature",
    "evaluation_v2.feature",
    "metadata.feature",
    "hooks.feature",
)


# -- the provider under test -------------------------------------------------------------


@pytest.fixture(scope="module")
def loaded() -> Loaded:
    return load(FLAGS_FILE)


def test_the_loader_translates_every_flag_the_suites_use(loaded: Loaded) -> None:
    """Every flag of test-flags.json is loaded except the two without a default
    variant (which no suite run here evaluates); both CEL expressions are rules."""
    assert set(loaded.skipped) == {"null-default-flag", "undefined-default-flag"}
    assert len(loaded.flags) == 23
    whens = {r["name"]: r["when"] for r in loaded.document["rules"]}
    assert whens["complex-targeted/internal"] == {
        "customer": {"equals": False},
        "email": {"equals": "ballmer@macrosoft.com"},
        "age": {"gt": 10},
    }
    assert whens["string-targeted-zero-flag/zero"] == {"email": {"equals": "ballmer@macrosoft.com"}}
    assert loaded.kills == ["boolean-disabled-flag"]


@dataclass
class World:
    """What the steps share within one scenario."""

    tmp: Path
    loaded: Loaded
    provider: FlagmwProvider | None = None
    client: OpenFeatureClient | None = None
    flag_client: FlagClient | None = None
    flag: tuple[str, str, Any] | None = None  # (type, key, default)
    context: dict[str, Any] = field(default_factory=dict)
    details: FlagEvaluationDetails[Any] | None = None
    hook: RecordingHook | None = None
    options_hooks: list[RecordingHook] = field(default_factory=list)
    original_context: dict[str, Any] | None = None
    async_done: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def _flag_client(world: World, *, registry_extra: dict[str, Any] | None = None) -> FlagClient:
    db = world.tmp / f"flags-{uuid.uuid4().hex[:6]}.db"
    registry = FlagRegistry.from_dict({"flags": world.loaded.flags})
    world.extra["db"] = db
    c = FlagClient(registry, SQLiteStore(db, create=True, verify_interval=0))
    c.publish(world.loaded.document, author="conformance", message="test-flags.json")
    for key in world.loaded.kills:
        c.kill(key, reason="disabled in test-flags.json", actor="conformance", ttl="1h")
    return c


def _provider(client: FlagClient, world: World) -> FlagmwProvider:
    return FlagmwProvider(
        client, variants=world.loaded.variants, flag_metadata=world.loaded.metadata
    )


@pytest.fixture
def world(tmp_path: Path, loaded: Loaded) -> Iterator[World]:
    w = World(tmp_path, loaded)
    yield w
    api.clear_providers()
    if w.flag_client is not None:
        w.flag_client.close()


def _install(world: World, provider: FlagmwProvider) -> None:
    domain = f"conformance-{uuid.uuid4().hex[:8]}"
    # an initialize that fails leaves the status ERROR (the "error provider" step)
    with contextlib.suppress(Exception):
        api.set_provider_and_wait(provider, domain=domain)
    world.provider = provider
    world.client = api.get_client(domain)
    if world.hook is not None:
        world.client.add_hooks([world.hook])


@given("a stable provider")
def stable_provider(world: World) -> None:
    world.flag_client = _flag_client(world)
    _install(world, _provider(world.flag_client, world))


@given("a stale provider")
def stale_provider(world: World) -> None:
    """The store's file is moved away: the client serves its last good config."""
    c = world.flag_client = _flag_client(world)
    _install(world, _provider(c, world))
    world.extra["db"].rename(world.tmp / "moved-away.db")
    assert world.provider is not None
    world.provider.poll()


@given("a error provider")
def error_provider(world: World) -> None:
    """The store's head rev was published for another registry and does not fit."""
    c = world.flag_client = _flag_client(world)
    other = FlagRegistry.from_dict(
        {"flags": {**world.loaded.flags, "only.elsewhere": {"type": "bool", "default": True}}}
    )
    with FlagClient(other, SQLiteStore(world.extra["db"])) as publisher:
        publisher.publish(
            {**world.loaded.document, "values": {"only.elsewhere": False}},
            author="other-app",
            message="a flag this application does not know",
        )
    c.refresh(force=True)
    _install(world, _provider(c, world))


@then(parsers.parse('the provider status should be "{status}"'))
def provider_status(world: World, status: str) -> None:
    assert world.client is not None
    assert world.client.get_provider_status().value == status


# -- the flag and its context ------------------------------------------------------------


def _typed(kind: str, text: str) -> Any:
    kind = kind.lower()
    if text == "null":
        return None
    if kind == "boolean":
        assert text in ("true", "false"), text
        return text == "true"
    if kind == "integer":
        return int(text)
    if kind == "float":
        return float(text)
    if kind == "object":
        return json.loads(text.replace('\\"', '"'))
    return text


@given(
    parsers.re(
        r'an? (?P<kind>(?i:boolean|string|integer|float|object))-flag with key "(?P<key>[^"]*)"'
        r' and a fallback value "(?P<default>.*)"'
    )
)
def a_flag(world: World, kind: str, key: str, default: str) -> None:
    world.flag = (kind.lower(), key, _typed(kind, default))


@given(
    parsers.re(
        r'a context containing a key "(?P<key>[^"]*)", with type "(?P<kind>\w+)" '
        r'and with value "(?P<value>.*)"'
    )
)
def context_entry(world: World, key: str, kind: str, value: str) -> None:
    world.context[key] = _typed(kind, value)


@given(parsers.parse('a context containing a key "{key}" with null value'))
def context_null(world: World, key: str) -> None:
    world.context[key] = None


def _evaluate(world: World, options: FlagEvaluationOptions | None = None) -> None:
    assert world.client is not None
    assert world.flag is not None
    kind, key, default = world.flag
    ctx = OFContext(attributes=dict(world.context)) if world.context else None
    method = getattr(world.client, f"get_{kind}_details")
    world.details = method(key, default, ctx, options)


@when("the flag was evaluated with details")
def evaluated(world: World) -> None:
    _evaluate(world)


@when("the flag was evaluated with details asynchronously")
def evaluated_async(world: World) -> None:
    assert world.client is not None
    assert world.flag is not None
    kind, key, default = world.flag
    method = getattr(world.client, f"get_{kind}_details_async")
    ticks: list[int] = []

    async def other_work() -> None:
        for i in range(3):
            ticks.append(i)
            await asyncio.sleep(0)

    async def both() -> FlagEvaluationDetails[Any]:
        details, _ = await asyncio.gather(method(key, default, None), other_work())
        return details  # type: ignore[no-any-return]

    world.details = asyncio.run(both())
    world.async_done = ticks == [0, 1, 2]


@then("the evaluation should complete without blocking")
def completed(world: World) -> None:
    assert world.async_done
    assert world.details is not None


@then(parsers.re(r'the resolved details value should be "(?P<value>.*)"'))
def details_value(world: World, value: str) -> None:
    assert world.details is not None
    assert world.flag is not None
    expected = _typed(world.flag[0], value)
    assert world.details.value == expected, world.details
    assert type(world.details.value) is type(expected)


@then(parsers.parse('the reason should be "{reason}"'))
def reason(world: World, reason: str) -> None:
    assert world.details is not None
    assert world.details.reason == reason, world.details


@then(parsers.parse('the error-code should be "{code}"'))
def error_code(world: World, code: str) -> None:
    assert world.details is not None
    assert world.details.error_code == code, world.details


@then(parsers.parse('the flag key should be "{key}"'))
def flag_key(world: World, key: str) -> None:
    assert world.details is not None
    assert world.details.flag_key == key


@then(parsers.re(r'the variant should be "(?P<variant>[^"]*)"$'))
def variant(world: World, variant: str) -> None:
    assert world.details is not None
    assert world.details.variant == variant, world.details


# -- metadata ------------------------------------------------------------------------------


@then("the resolved metadata should contain")
def metadata_contains(world: World, datatable: list[list[str]]) -> None:
    assert world.details is not None
    md = world.details.flag_metadata
    header, *rows = datatable
    assert header == ["key", "metadata_type", "value"]
    for key, kind, value in rows:
        assert md[key] == _typed(kind, value), md
        assert type(md[key]) is type(_typed(kind, value))


@then("the resolved metadata is empty")
def metadata_empty(world: World) -> None:
    assert world.details is not None
    assert not world.details.flag_metadata


# -- hooks --------------------------------------------------------------------------------


class RecordingHook(Hook):
    def __init__(self, name: str = "hook", log: list[str] | None = None) -> None:
        self.name = name
        self.log = log if log is not None else []
        self.details: dict[str, FlagEvaluationDetails[Any]] = {}

    def before(self, hook_context: HookContext, hints: Any) -> None:
        self.log.append(f"{self.name}:before")

    def after(self, hook_context: HookContext, details: Any, hints: Any) -> None:
        self.log.append(f"{self.name}:after")
        self.details["after"] = details

    def error(self, hook_context: HookContext, exception: Exception, hints: Any) -> None:
        self.log.append(f"{self.name}:error")

    def finally_after(self, hook_context: HookContext, details: Any, hints: Any) -> None:
        self.log.append(f"{self.name}:finally")
        self.details["finally"] = details


@given("a client with added hook")
def client_with_hook(world: World) -> None:
    assert world.client is not None
    world.hook = RecordingHook()
    world.client.add_hooks([world.hook])


@then(parsers.parse('the "{stage}" hook should have been executed'))
def hook_executed(world: World, stage: str) -> None:
    assert world.hook is not None
    assert f"hook:{stage}" in world.hook.log, world.hook.log


@then(parsers.parse('the "{stages}" hooks should be called with evaluation details'))
def hooks_details(world: World, stages: str, datatable: list[list[str]]) -> None:
    assert world.hook is not None
    header, *rows = datatable
    assert header == ["data_type", "key", "value"]
    for stage in (s.strip() for s in stages.split(",")):
        got = world.hook.details[stage]
        for kind, key, value in rows:
            expected = None if value == "null" else _typed(kind, value)
            actual = getattr(got, key)
            actual = actual.value if hasattr(actual, "value") and key != "value" else actual
            assert actual == expected, (stage, key, got)


@given("evaluation options containing specific hooks")
def options_hooks(world: World) -> None:
    log: list[str] = []
    world.options_hooks = [RecordingHook("first", log), RecordingHook("second", log)]


@when("the flag was evaluated with details using the evaluation options")
def evaluated_with_options(world: World) -> None:
    _evaluate(world, FlagEvaluationOptions(hooks=list(world.options_hooks)))


@then("the specified hooks should execute during evaluation")
def hooks_ran(world: World) -> None:
    assert world.details is not None
    assert world.details.error_code is None
    log = world.options_hooks[0].log
    assert {"first:before", "second:before", "first:after", "second:after"} <= set(log)


@then("the hook order should be maintained")
def hook_order(world: World) -> None:
    # spec 4.4.2: before hooks in order; after/finally in reverse order
    assert world.options_hooks[0].log == [
        "first:before",
        "second:before",
        "second:after",
        "first:after",
        "second:finally",
        "first:finally",
    ]


# -- the deprecated evaluation.feature ---------------------------------------------------

_TYPES = {"a boolean": "boolean", "a string": "string", "an integer": "integer"}
_TYPES |= {"a float": "float", "an object": "object"}


@when(
    parsers.re(
        r'(?P<art>a boolean|a string|an integer|a float) flag with key "(?P<key>[^"]*)" is '
        r'evaluated with (?P<det>details and )?default value "?(?P<default>[^"]*)"?$'
    )
)
def v1_evaluate(world: World, art: str, key: str, det: str | None, default: str) -> None:
    kind = _TYPES[art]
    world.flag = (kind, key, _typed(kind, default))
    _evaluate(world)


@when(
    parsers.re(
        r'an object flag with key "(?P<key>[^"]*)" is evaluated with (?:details and )?'
        r"a null default value"
    )
)
def v1_object(world: World, key: str) -> None:
    world.flag = ("object", key, {})
    _evaluate(world)


@then(
    parsers.re(
        r'the resolved (?P<kind>boolean|string|integer|float) value should be "?(?P<value>[^"]*)"?$'
    )
)
def v1_value(world: World, kind: str, value: str) -> None:
    assert world.details is not None
    assert world.details.value == _typed(kind, value), world.details


@then(
    parsers.re(
        r"the resolved (?P<kind>boolean|string|integer|float) details value should be "
        r'"?(?P<value>[^",]*)"?, the variant should be "(?P<variant>[^"]*)", and the reason '
        r'should be "(?P<reason>[^"]*)"'
    )
)
def v1_details(world: World, kind: str, value: str, variant: str, reason: str) -> None:
    d = world.details
    assert d is not None
    assert (d.value, d.variant, d.reason) == (_typed(kind, value), variant, reason), d


@then(
    parsers.re(
        r'the resolved object (?:details )?value should be contain fields "showImages", '
        r'"title", and "imagesPerPage", with values "true", "Check out these pics!" and 100, '
        r"respectively"
    )
)
def v1_object_value(world: World) -> None:
    assert world.details is not None
    assert world.details.value == {
        "showImages": True,
        "title": "Check out these pics!",
        "imagesPerPage": 100,
    }


@then(
    parsers.re(
        r'the variant should be "(?P<variant>[^"]*)", and the reason should be "(?P<reason>[^"]*)"'
    )
)
def v1_variant_reason(world: World, variant: str, reason: str) -> None:
    d = world.details
    assert d is not None
    assert (d.variant, d.reason) == (variant, reason), d


@when(
    parsers.re(
        r'a non-existent string flag with key "(?P<key>[^"]*)" is evaluated with details and '
        r'a fallback value "(?P<default>[^"]*)"'
    )
)
def v1_missing(world: World, key: str, default: str) -> None:
    world.flag = ("string", key, default)
    _evaluate(world)


@when(
    parsers.re(
        r'a string flag with key "(?P<key>[^"]*)" is evaluated as an integer, with details '
        r"and a fallback value (?P<default>\d+)"
    )
)
def v1_mismatch(world: World, key: str, default: str) -> None:
    world.flag = ("integer", key, int(default))
    _evaluate(world)


@then(parsers.re(r"the default (?P<kind>string|integer) value should be returned"))
def v1_default(world: World, kind: str) -> None:
    assert world.details is not None
    assert world.flag is not None
    assert world.details.value == world.flag[2]


@then(
    parsers.re(
        r"the reason should indicate an error and the error code should indicate "
        r'(?:a missing flag|a type mismatch) with "(?P<code>[^"]*)"'
    )
)
def v1_error(world: World, code: str) -> None:
    d = world.details
    assert d is not None
    assert (d.reason, d.error_code) == ("ERROR", code), d


@when(
    parsers.re(
        r'an integer flag with key "(?P<key>[^"]*)" is evaluated with (?P<det>details and )?'
        r"default value (?P<default>\d+)"
    )
)
def v1_integer(world: World, key: str, det: str | None, default: str) -> None:
    world.flag = ("integer", key, int(default))
    _evaluate(world)


@when(
    parsers.re(
        r'a float flag with key "(?P<key>[^"]*)" is evaluated with (?P<det>details and )?'
        r"default value (?P<default>[\d.]+)"
    )
)
def v1_float(world: World, key: str, det: str | None, default: str) -> None:
    world.flag = ("float", key, float(default))
    _evaluate(world)


@then(parsers.re(r"the resolved (?P<kind>integer|float) value should be (?P<value>[\d.]+)$"))
def v1_number(world: World, kind: str, value: str) -> None:
    assert world.details is not None
    assert world.details.value == _typed(kind, value)


@then(
    parsers.re(
        r"the resolved (?P<kind>integer|float) details value should be (?P<value>[\d.]+), the "
        r'variant should be "(?P<variant>[^"]*)", and the reason should be "(?P<reason>[^"]*)"'
    )
)
def v1_number_details(world: World, kind: str, value: str, variant: str, reason: str) -> None:
    d = world.details
    assert d is not None
    assert (d.value, d.variant, d.reason) == (_typed(kind, value), variant, reason), d


def test_the_docs_list_every_scenario_that_does_not_apply() -> None:
    from conformance.openfeature.conftest import NOT_APPLICABLE

    doc = (HERE.parents[2] / "docs" / "openfeature.md").read_text()
    for _feature, scenario, part in NOT_APPLICABLE:
        assert scenario in doc, scenario
        if part is not None and part.endswith("-flag"):
            assert part.split("-")[0] in doc, part
