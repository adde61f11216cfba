"""Project-wide checks that run with the test suite: lint, format, types, and the rule
that the core's pure parts import neither LangGraph, LangChain nor OpenTelemetry."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_check() -> None:
    proc = _run(str(BIN / "ruff"), "check", "--no-cache", ".")  # a cache can hide findings
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_format() -> None:
    proc = _run(str(BIN / "ruff"), "format", "--check", "--no-cache", ".")
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow
def test_mypy_strict_on_flagmw() -> None:
    proc = _run(str(BIN / "mypy"))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_core_imports_neither_langgraph_nor_opentelemetry() -> None:
    code = (
        "import sys\n"
        "import flagmw, flagmw.core.registry, flagmw.core.snapshot, flagmw.core.resolve, "
        "flagmw.core.runconfig, flagmw.client, flagmw.stores.sqlite, flagmw.core.conditions, "
        "flagmw.core.bucketing\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'langgraph', 'langchain', 'langchain_core', 'opentelemetry'})\n"
        "print(','.join(heavy))\n"
    )
    proc = _run(sys.executable, "-c", code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"the core imported: {proc.stdout.strip()}"
