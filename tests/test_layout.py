"""The layering rules of docs/architecture.md, checked on the source tree.

- the pure core (``flagmw/core``) imports nothing from LangGraph, LangChain,
  OpenTelemetry, the stores, the client or any other shell package;
- the core never imports a shell package lazily either (inside a function);
- no module of ``flagmw/`` or ``integrations/`` is longer than ~500 lines.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "flagmw"

#: what a core module may import besides the standard library
CORE_MAY_IMPORT = frozenset(
    {
        "flagmw.core",
        "flagmw.errors",
        "pydantic",
        "pydantic_core",
        "yaml",
        "mmh3",
        "jsonschema",
        "referencing",
        "rfc8785",
    }
)
SHELL = (
    "flagmw.stores",
    "flagmw.client",
    "flagmw.langgraph",
    "flagmw.tracing",
    "flagmw.cli",
    "flagmw.lint",
    "flagmw.testing",
    "flagmw.integrations",
    "flagmw.examples",
)
HEAVY = ("langgraph", "langchain", "langchain_core", "opentelemetry", "psycopg", "redis")


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.extend(
                (node.lineno, f"{node.module}.{alias.name}")
                if node.module == "flagmw"
                else (node.lineno, node.module)
                for alias in node.names
            )
    return found


def _allowed(name: str) -> bool:
    top = name.split(".")[0]
    if top in sys.stdlib_module_names or top == "__future__":
        return True
    return any(name == ok or name.startswith(ok + ".") for ok in CORE_MAY_IMPORT)


CORE_FILES = sorted((PACKAGE / "core").rglob("*.py"))


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_core_module_imports_only_the_core(path: Path) -> None:
    bad = [
        f"{path.relative_to(ROOT)}:{line}: {name}"
        for line, name in _imports(path)
        if not _allowed(name)
    ]
    assert bad == [], "the pure core imports a shell package or a heavy dependency:\n" + "\n".join(
        bad
    )


def test_the_rule_itself_catches_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "def f():\n    from flagmw.stores.sqlite import SQLiteStore\n    import langgraph\n"
    )
    assert [name for _, name in _imports(bad) if not _allowed(name)] == [
        "flagmw.stores.sqlite",
        "langgraph",
    ]


def test_core_is_not_empty() -> None:
    names = {p.stem for p in CORE_FILES}
    assert {"context", "registry", "snapshot", "runconfig"} <= names


#: "no file over ~500 lines": one concept per file (docs/architecture.md)
MAX_LINES = 510
SOURCE_FILES = sorted(
    p
    for folder in ("flagmw", "integrations", "examples")
    for p in (ROOT / folder).rglob("*.py")
    if "__pycache__" not in p.parts
)


def test_no_module_is_longer_than_about_500_lines() -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for p in SOURCE_FILES
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}, f"split these by concept (limit {MAX_LINES} lines): {long}"


def test_every_subpackage_is_installed() -> None:
    """pyproject.toml lists the packages explicitly (integrations/ and examples/ are
    mapped into flagmw): a subpackage missing from the list is missing from a wheel."""
    import tomllib

    root = Path(__file__).resolve().parent.parent
    listed = set(
        tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    on_disk = {
        ".".join(init.parent.relative_to(root).parts)
        for init in (root / "flagmw").rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert on_disk - listed == set(), "add these to [tool.setuptools] packages"
