"""The incident commands' standard-library parser (``flagmw.cli.incident``) against the
typer commands it stands in for (issue 7 §5).

1. The two declare the same parameters (names, option strings, defaults, required,
   flags, environment variables), read from typer's own command objects, so they cannot
   drift apart; and for every command line built from those parameters (hypothesis), the
   fast parser either gives exactly the values click parses or hands the line to typer.
2. Real ``flagmw`` processes on real stores (SQLite files; one Redis namespace): the
   same command line through the fast path (``flagmw.cli.main``, typer never imported)
   and through typer (``flagmw.cli.app.main``), on two copies of one store, print the
   same, exit with the same code and leave the same overrides and audit entries, for good
   and bad input — a missing reason, a bad TTL, an unknown option, an unknown flag, an
   unreachable store (exit 2, never a success line).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
import typer.main
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import flagmw.cli
from flagmw import SQLiteStore
from flagmw.cli import entry, incident
from flagmw.cli.app import app

REFUND = "tools.refund_api.enabled"
PII = "compliance.pii_redaction"  # protected; tenant acme requires it

# -- 1. the declarations ----------------------------------------------------------------


def _click_group() -> Any:
    return typer.main.get_command(app)


def _declared(params: Any) -> dict[str, tuple[Any, ...]]:
    """name → (option strings, secondary option strings, default, required, flag, envvar)
    of typer's parameters."""
    out = {}
    for p in params:
        flag = bool(getattr(p, "is_flag", False))
        opts = () if p.param_type_name == "argument" else tuple(p.opts)
        out[p.name] = (opts, tuple(p.secondary_opts), p.default, p.required, flag, p.envvar)
        assert p.nargs == 1, p.name  # what the fast parser supports
        assert not p.multiple, p.name
    return out


def _fast(params: tuple[incident.Param, ...]) -> dict[str, tuple[Any, ...]]:
    return {p.name: (p.opts, (), p.default, p.required, p.flag, None) for p in params}


def test_every_fast_command_declares_what_the_typer_command_declares() -> None:
    group = _click_group()
    assert set(incident.COMMANDS) == {"kill", "override", "renew", "unkill", "overrides"}
    for name, command in incident.COMMANDS.items():
        typer_params = _declared(group.commands[name].params)
        assert _fast(command.all_params()) == typer_params, name
        # same order: positional arguments are matched by position
        assert [p.name for p in command.all_params()] == list(typer_params), name


def test_the_global_options_are_typers_root_options() -> None:
    root = _declared(_click_group().params)
    renamed = {"json_output": "json"}
    assert {renamed.get(k, k): v for k, v in root.items()} == _fast(incident.GLOBAL_OPTIONS)


def test_the_console_script_is_the_dispatcher() -> None:
    [script] = entry_points(group="console_scripts", name="flagmw")
    assert script.value == "flagmw.cli:main"
    assert flagmw.cli.main is entry.main
    assert isinstance(flagmw.cli.app, typer.Typer)  # the name still gives the Typer app


# -- the parser against click's, for generated command lines ------------------------------

_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="\x00"),
    max_size=12,
).filter(lambda s: not s.startswith("-"))


@st.composite
def _command_lines(draw: st.DrawFn) -> tuple[str, list[str]]:
    """A well-formed command line of one incident command: its arguments, then each of
    its options at most once with a value (``--opt v`` or ``--opt=v``), in any order."""
    name = draw(st.sampled_from(sorted(incident.COMMANDS)))
    command = incident.COMMANDS[name]
    positional = [draw(_TEXT) for p in command.params if p.argument]
    pieces: list[list[str]] = []
    for p in command.all_params():
        if p.argument or not (p.required or draw(st.booleans())):
            continue
        opt = draw(st.sampled_from(p.opts))
        if p.flag:
            pieces.append([opt])
        elif draw(st.booleans()):
            pieces.append([f"{opt}={draw(_TEXT)}"])
        else:
            pieces.append([opt, draw(_TEXT)])
    pieces = draw(st.permutations(pieces))
    cut = draw(st.integers(0, len(pieces)))  # options may come before the arguments
    args = [t for piece in pieces[:cut] for t in piece] + positional
    args += [t for piece in pieces[cut:] for t in piece]
    return name, args


@given(_command_lines())
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_well_formed_lines_parse_to_the_values_click_parses(line: tuple[str, list[str]]) -> None:
    name, args = line
    parsed = incident.parse([name, *args])
    assert parsed is not None, args  # a well-formed line takes the fast path
    ctx = _click_group().commands[name].make_context(name, list(args))
    assert parsed.after == ctx.params
    assert parsed.command == name


_TOKENS = st.sampled_from(
    [
        "kill",
        REFUND,
        "--reason",
        "--reason=r",
        "r",
        "--ttl",
        "1m",
        "--tenant",
        "--force",
        "--force=yes",
        "--environment",
        "--store",
        "-v",
        "-vv",
        "--json",
        "--all",
        "--bogus",
        "--rea",
        "-h",
        "--help",
        "--",
        "-",
        "-1",
        "",
    ]
)


@given(st.sampled_from(sorted(incident.COMMANDS)), st.lists(_TOKENS, max_size=8))
@settings(max_examples=400, deadline=None)
def test_any_line_the_fast_parser_takes_click_parses_the_same(name: str, args: list[str]) -> None:
    """For arbitrary token soup: when the fast parser accepts a line, click accepts it with
    the same values; when click refuses it, the fast parser hands it over (None)."""
    parsed = incident.parse([name, *args])
    try:
        ctx = _click_group().commands[name].make_context(name, list(args))
    except Exception:  # a usage error, click's --help exit, and the like
        ctx = None
    if ctx is None:
        assert parsed is None, args
    elif parsed is not None:
        assert parsed.after == ctx.params, args


@st.composite
def _global_prefixes(draw: st.DrawFn) -> list[str]:
    """Global options before the command name, in any order, some repeated."""
    out: list[str] = []
    for _ in range(draw(st.integers(0, 6))):
        g = draw(st.sampled_from(incident.GLOBAL_OPTIONS))
        opt = draw(st.sampled_from(g.opts))
        if g.flag:
            out.append(opt)
        elif draw(st.booleans()):
            out.append(f"{opt}={draw(_TEXT)}")
        else:
            out += [opt, draw(_TEXT)]
    return out


@given(_global_prefixes(), _command_lines())
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_options_before_the_command_parse_as_typers_root_parses_them(
    prefix: list[str], line: tuple[str, list[str]]
) -> None:
    name, args = line
    parsed = incident.parse([*prefix, name, *args])
    assert parsed is not None
    ctx = _click_group().make_context("flagmw", [*prefix, name, *args])
    root = {("json" if k == "json_output" else k): v for k, v in ctx.params.items()}
    assert parsed.before == root
    assert [*ctx._protected_args, *ctx.args] == [name, *args]


@pytest.mark.parametrize(
    "argv",
    [
        ["kill", REFUND, "--reason", "r", "--help"],
        ["kill", "-h"],
        ["kill", REFUND],  # missing --reason
        ["kill", REFUND, "--reason", "r", "--bogus"],
        ["kill", REFUND, "--rea", "r"],  # abbreviations are click's business
        ["kill", REFUND, "--reason", "r", "extra"],
        ["kill", REFUND, "--reason", "--json"],  # click takes --json as the reason
        ["--bogus", "kill", REFUND, "--reason", "r"],
        ["--store"],
        ["--json=1", "kill", REFUND, "--reason", "r"],
        ["history"],
        ["publish", "flags.yaml", "-m", "x"],
        [],
    ],
)
def test_lines_the_fast_parser_hands_to_typer(argv: list[str]) -> None:
    assert incident.parse(argv) is None


def test_global_options_before_and_after_the_command() -> None:
    parsed = incident.parse(
        [
            "--store",
            "a.db",
            "--environment=staging",
            "-v",
            "kill",
            REFUND,
            "--reason",
            "r",
            "--environment",
            "eu",
            "--store",
            "b.db",
            "--json",
        ]
    )
    assert parsed is not None
    assert parsed.before["store"] == "a.db"
    assert parsed.before["environment"] == "staging"
    assert parsed.before["verbose"] is True
    assert parsed.after["environment"] == "eu"  # kill: the scope, not the global option
    assert parsed.after["_g_store"] == "b.db"
    assert parsed.after["_g_json"] is True


# -- 2. real processes on real stores ------------------------------------------------------

_PROBE = """
import json, sys
from {module} import main
try:
    main(json.loads(sys.argv[1]))
    code = 0
except SystemExit as exc:
    code = exc.code
sys.stderr.write("\\n#typer=" + str("typer" in sys.modules) + "\\n")
sys.exit(code)
"""


@dataclass
class Run:
    code: int
    out: str
    err: str
    typer: bool


def _run(module: str, args: list[str], cwd: Path, env: dict[str, str] | None = None) -> Run:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE.format(module=module), json.dumps(args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith(("FLAGMW_", "FF_"))},
            "FLAGMW_ACTOR": "oncall",
            **(env or {}),
        },
        timeout=120,
    )
    err, _, marker = done.stderr.rstrip("\n").rpartition("\n#typer=")
    assert marker in ("True", "False"), done.stderr
    return Run(done.returncode, done.stdout, err, marker == "True")


_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
_LEFT = re.compile(r"\(in [0-9dhms]+\)")
_MOVING = ("created_at", "expires_at", "ended_at", "renewed_at", "at", "seconds_left")


def _steady(value: Any) -> Any:
    """Output without what moves between two runs a second apart (times, time left)."""
    if isinstance(value, dict):
        return {k: _steady(v) for k, v in value.items() if k not in _MOVING}
    if isinstance(value, list):
        return [_steady(v) for v in value]
    if isinstance(value, str):
        return _LEFT.sub("(in …)", _TIME.sub("T", value))
    return value


def _output(r: Run) -> Any:
    try:
        return _steady(json.loads(r.out))
    except ValueError:
        return _steady(r.out)


def _state(folder: Path) -> tuple[list[Any], list[Any]]:
    store = SQLiteStore(folder / "flagmw.db")
    try:
        overrides = [_steady(o.to_dict()) for o in store.list_overrides(include_ended=True)]
        audit = [(e.action, e.actor, e.reason, e.target) for e in store.audit()]
    finally:
        store.close()
    return overrides, audit


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the starter flags.yaml and a store holding its first snapshot."""
    folder = tmp_path_factory.mktemp("published")
    for args in (["init", "."], ["publish", "flags.yaml", "--message", "first"]):
        assert _run("flagmw.cli.app", args, folder).code == 0
    return folder


@pytest.fixture
def twins(published: Path, tmp_path: Path) -> tuple[Path, Path]:
    """Two copies of the published folder: one for each front-end."""
    fast, slow = tmp_path / "fast", tmp_path / "typer"
    shutil.copytree(published, fast)
    shutil.copytree(published, slow)
    return fast, slow


def _both(twins: tuple[Path, Path], *commands: list[str], **env: str) -> list[tuple[Run, Run]]:
    """Each command line in turn through the fast path (first folder) and through typer
    (second folder); both must have taken their own path."""
    fast_dir, typer_dir = twins
    runs = []
    for args in commands:
        fast = _run("flagmw.cli", args, fast_dir, env)
        slow = _run("flagmw.cli.app", args, typer_dir, env)
        assert slow.typer
        runs.append((fast, slow))
    return runs


def _same(fast: Run, slow: Run) -> None:
    assert fast.code == slow.code, (fast, slow)
    assert _output(fast) == _output(slow)
    assert _steady(fast.err) == _steady(slow.err)


def test_a_kill_and_its_siblings_do_what_typer_does(twins: tuple[Path, Path]) -> None:
    lines = [
        ["kill", REFUND, "--reason", "CRM webhook 500", "--ttl", "30m"],
        ["kill", PII, "--reason", "redactor outage"],  # exempt tenant acme is named
        ["--environment", "staging", "kill", REFUND, "--reason", "t", "--tenant", "acme"],
        ["kill", REFUND, "--reason", "scoped", "--route", "refund-assistant", "--json"],
        ["kill", REFUND, "--reason", "prod only", "--environment", "production", "--ttl=2h"],
        ["override", "loop.max_iterations", "3", "--reason", "cost", "--ttl", "1h"],
        ["renew", "ov-1", "--reason", "still broken", "--ttl", "2h"],
        ["unkill", "ov-2", "--reason", "redactor back"],
        ["overrides", "--json"],
        ["overrides", "--all", "--json", "-v"],
    ]
    for fast, slow in _both(twins, *lines):
        assert not fast.typer, fast  # the fast path never imported typer
        assert fast.code == 0, fast.err
        _same(fast, slow)
    assert _state(twins[0]) == _state(twins[1])
    overrides, audit = _state(twins[0])
    assert [a[0] for a in audit[:3]] == ["kill.end", "kill.renew", "override.set"]
    assert {o["reason"] for o in overrides} >= {"CRM webhook 500", "redactor outage", "cost"}


def test_bad_input_fails_the_same_way_and_writes_nothing(twins: tuple[Path, Path]) -> None:
    before = _state(twins[0])
    lines = [
        ["kill", REFUND],  # missing --reason: typer reports it
        ["kill", REFUND, "--reason", "r", "--ttl", "soon"],  # bad TTL
        ["kill", REFUND, "--reason", "r", "--ttl", "9d"],  # above --max-ttl
        ["kill", REFUND, "--reason", "   "],  # an empty reason
        ["kill", REFUND, "--reason", "r", "--bogus"],  # unknown option
        ["kill", "tools.nope", "--reason", "r"],  # unknown flag
        ["kill", "model.primary", "--reason", "r"],  # not a bool flag
        ["kill", REFUND, "--reason", "r", "--tenant", "acmee"],  # unknown tenant
        ["kill", REFUND, "--reason", "r", "--json", "--ttl", "0s"],
        ["unkill", "ov-99", "--reason", "r"],
        ["kill", REFUND, "--reason", "r", "--store", "missing.db"],
    ]
    for fast, slow in _both(twins, *lines):
        _same(fast, slow)
        assert fast.code == 2, fast
        assert "flagmw: error: " in fast.err
        assert "Traceback" not in fast.err
        assert "end it early" not in fast.out  # no success line
    assert _state(twins[0]) == _state(twins[1]) == before


def test_an_unreachable_store_fails_safe(twins: tuple[Path, Path]) -> None:
    """Nothing listens on port 9: the kill did not commit, and says so (exit 2)."""
    for store in ("postgresql://flagmw@127.0.0.1:9/none", "redis://127.0.0.1:9/0"):
        args = ["kill", REFUND, "--reason", "r", "--store", store]
        [(fast, slow)] = _both(twins, args)
        assert not fast.typer
        _same(fast, slow)
        assert fast.code == 2
        assert fast.out == ""
        assert fast.err.startswith("flagmw: error: ")
        assert "Traceback" not in fast.err


def test_the_console_script_takes_the_fast_path(published: Path, tmp_path: Path) -> None:
    folder = tmp_path / "app"
    shutil.copytree(published, folder)
    script = Path(sys.executable).parent / "flagmw"
    done = subprocess.run(
        [str(script), "kill", REFUND, "--reason", "console script", "--ttl", "1m"],
        capture_output=True,
        text=True,
        cwd=folder,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"kill ov-1: {REFUND} = false\n")
    overrides, audit = _state(folder)
    assert overrides[0]["reason"] == "console script"
    assert audit[0][0] == "kill.set"


def test_a_kill_on_redis_does_what_typer_does(tmp_path: Path, published: Path) -> None:
    url = os.environ.get("FLAGMW_TEST_REDIS_URL")
    if not url:
        pytest.skip("set FLAGMW_TEST_REDIS_URL (e.g. redis://127.0.0.1:6379/0)")
    from store_kinds import redis_cleanup

    from flagmw.stores.redis import RedisStore

    apps = [f"t{uuid.uuid4().hex[:12]}" for _ in range(2)]
    folders = []
    try:
        for name in apps:
            folder = tmp_path / name
            folder.mkdir()
            shutil.copy(published / "flags.yaml", folder / "flags.yaml")
            env = {"FLAGMW_STORE": f"{url}?app={name}&env=prod"}
            assert _run("flagmw.cli.app", ["init", ".", "--no-flags-file"], folder, env).code == 0
            published_rev = _run(
                "flagmw.cli.app", ["publish", "flags.yaml", "-m", "first"], folder, env
            )
            assert published_rev.code == 0, published_rev.err
            folders.append((folder, env))
        lines = [
            ["kill", REFUND, "--reason", "redis incident", "--ttl", "10m", "--json"],
            ["kill", REFUND, "--reason", "r", "--ttl", "forever"],
            ["unkill", "ov-1", "--reason", "fixed"],
        ]
        for args in lines:
            fast = _run("flagmw.cli", args, *folders[0])
            slow = _run("flagmw.cli.app", args, *folders[1])
            assert not fast.typer
            assert slow.typer
            _same(fast, slow)
        states = []
        for name in apps:
            with RedisStore(url, app=name, env="prod") as store:
                states.append(
                    (
                        [_steady(o.to_dict()) for o in store.list_overrides(include_ended=True)],
                        [(e.action, e.actor, e.reason) for e in store.audit()],
                    )
                )
        assert states[0] == states[1]
        assert [a[0] for a in states[0][1]] == ["kill.end", "kill.set", "publish"]
    finally:
        for name in apps:
            redis_cleanup(url, f"flagmw:{name}:")
