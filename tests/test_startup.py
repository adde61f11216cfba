"""Start-up: ``import flagmw`` loads nothing heavy (every public name is imported on first
use, PEP 562), and the ``flagmw`` command imports only what the command it runs needs.

These are checks of *what* a fresh process imports (``sys.modules`` in a subprocess);
how long start-up takes is measured in ``benchmarks/bench_startup.py``, never here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import flagmw

HEAVY = ("pydantic", "yaml", "jsonschema", "rich", "typer", "sqlite3", "langgraph", "opentelemetry")


def _modules_after(code: str, cwd: Path | None = None, **env: str) -> list[str]:
    """The modules a fresh interpreter holds after running ``code``."""
    probe = f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **env},
        check=True,
    )
    modules: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return modules


def _tops(modules: list[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


def test_import_flagmw_loads_nothing_heavy() -> None:
    modules = _modules_after("import flagmw")
    assert _tops(modules).isdisjoint(HEAVY), sorted(_tops(modules) & set(HEAVY))
    assert [m for m in modules if m.startswith("flagmw")] == ["flagmw", "flagmw._version"]


def test_every_public_name_resolves_lazily_to_its_definition() -> None:
    """``from flagmw import X`` works for every name of ``__all__``, in a fresh process,
    and gives the object its defining module holds."""
    names = [n for n in flagmw.__all__ if n != "__version__"]
    code = (
        "import importlib, flagmw\n"
        f"for name in {names!r}:\n"
        "    module, _ = flagmw._LAZY[name]\n"
        "    value = getattr(flagmw, name)\n"
        "    assert value is getattr(importlib.import_module(module), name), name\n"
        "from flagmw import FlagClient, RunConfig, wrap, current\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_lazy_table_is_the_public_api() -> None:
    assert set(flagmw._LAZY) | {"__version__"} == set(flagmw.__all__)
    assert set(flagmw.__all__) <= set(dir(flagmw))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = flagmw.nope  # type: ignore[attr-defined]
    assert flagmw.FlagClient.__name__ == "FlagClient"
    assert "FlagClient" in vars(flagmw)  # kept after the first use


def test_flagmw_help_does_not_load_the_library() -> None:
    modules = _modules_after(
        "from flagmw.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass"
    )
    loaded = set(modules)
    assert "flagmw.client.client" not in loaded
    assert "flagmw.core.registry" not in loaded
    assert "sqlite3" not in loaded


_RUN = (
    "from flagmw.cli import main\n"
    "try:\n"
    "    main({args!r})\n"
    "except SystemExit as e:\n"
    "    assert not e.code, e.code"
)


def test_flagmw_kill_does_not_load_rich_or_the_integrations(tmp_path: Path) -> None:
    """What an on-call engineer runs in an incident: the client, the registry and the
    SQLite store, but no command-line framework (the standard-library parser of
    ``flagmw.cli.incident``), table renderer, LangGraph or OpenTelemetry."""
    for args in (["init", "."], ["publish", "flags.yaml", "--message", "first"]):
        subprocess.run([sys.executable, "-c", _RUN.format(args=args)], cwd=tmp_path, check=True)
    kill = ["kill", "tools.refund_api.enabled", "--reason", "incident", "--ttl", "1m"]
    tops = _tops(_modules_after(_RUN.format(args=kill), cwd=tmp_path))
    unwanted = {"typer", "click", "rich", "langgraph", "opentelemetry", "langchain_core"}
    assert tops.isdisjoint(unwanted), sorted(tops & unwanted)
    store = flagmw.SQLiteStore(tmp_path / "flagmw.db", create=True)
    try:
        [ov] = store.list_overrides()
    finally:
        store.close()
    assert (ov.key, ov.value, ov.reason) == ("tools.refund_api.enabled", False, "incident")


def test_flagmw_kill_does_not_load_pydantic_or_jsonschema(tmp_path: Path) -> None:
    """The kill of a correct registry (parsed without pydantic, the JSON schema of
    ``model.fallbacks`` checked only if that flag is read) on a store whose head was
    published against the same registry (so the snapshot is not validated again): with
    ``./flags.yaml`` and, from an empty folder, with the registry stored in the store."""
    app, oncall = tmp_path / "app", tmp_path / "oncall"
    app.mkdir()
    oncall.mkdir()
    for args in (["init", "."], ["publish", "flags.yaml", "--message", "first"]):
        subprocess.run([sys.executable, "-c", _RUN.format(args=args)], cwd=app, check=True)
    kill = ["kill", "tools.refund_api.enabled", "--reason", "incident", "--ttl", "1m"]
    store = str(app / "flagmw.db")
    for cwd in (app, oncall):
        modules = set(_modules_after(_RUN.format(args=kill), cwd=cwd, FLAGMW_STORE=store))
        tops = _tops(list(modules))
        assert tops.isdisjoint({"pydantic", "pydantic_core", "jsonschema", "referencing"}), cwd
        assert "flagmw.core.flag_spec_model" not in modules
        assert "flagmw.core.snapshot_models" not in modules
        assert "flagmw.core.registry" in modules  # the kill did go through the client
    store_ = flagmw.SQLiteStore(store)
    try:
        assert [o.reason for o in store_.list_overrides()] == ["incident", "incident"]
    finally:
        store_.close()
