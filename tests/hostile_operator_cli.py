"""Shared by the ``test_hostile_operator*`` tests: the real ``flagmw`` console script run
as an OS process (arguments may be bytes, as a shell passes them), a small project with a
SQLite store, and the store's bytes to prove that a refused command changed nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

_SCRIPT = shutil.which("flagmw", path=str(Path(sys.executable).parent))
COMMAND: list[str] = [_SCRIPT] if _SCRIPT else [sys.executable, "-m", "flagmw.cli"]

FLAGS = {
    "tools.refund.enabled": {
        "type": "bool",
        "default": True,
        "binding": "hot",
        "owner": "payments",
        "description": "Refund tool",
    },
    "prompt.note": {"type": "string", "default": "-", "owner": "ux", "description": "A note"},
    "loop.max": {
        "type": "int",
        "min": 1,
        "max": 50,
        "default": 8,
        "owner": "platform",
        "description": "Loop cap",
    },
    "prompt.style": {
        "type": "enum",
        "choices": ["v2", "v3"],
        "default": "v2",
        "owner": "ux",
        "description": "Style",
    },
}
SNAPSHOT = {
    "values": {"loop.max": 8},
    "tenants": {"acme": {"values": {"loop.max": 4}}},
    "experiments": {
        "style": {
            "flag": "prompt.style",
            "unit": "user",
            "variants": {"a": "v2", "b": "v3"},
            "weights": {"a": 50, "b": 50},
        }
    },
}


@dataclass
class Run:
    """One finished command: exit code and its output, decoded as strict UTF-8 (what a
    terminal receives must be valid UTF-8; a lone surrogate could not be)."""

    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


def env(**extra: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith(("FLAGMW_", "FF_"))}
    out.update({"COLUMNS": "250", "FLAGMW_ACTOR": "tester", **extra})
    return out


def cli(cwd: Path, *args: str | bytes, environ: dict[str, str] | None = None) -> Run:
    """``flagmw ARGS`` in ``cwd`` as a separate process (a crash is an exit code)."""
    proc = subprocess.run(
        [*COMMAND, *args],
        cwd=cwd,
        env=environ or env(),
        capture_output=True,
        timeout=120,
        check=False,
    )
    return Run(proc.returncode, proc.stdout.decode("utf-8"), proc.stderr.decode("utf-8"))


def project(folder: Path) -> Path:
    """A flags file and a SQLite store with rev 1 published; returns the folder."""
    (folder / "flags.yaml").write_text(
        yaml.safe_dump({"flags": FLAGS, **SNAPSHOT}, sort_keys=False), encoding="utf-8"
    )
    done = cli(folder, "init", "--no-flags-file", "--store", "flagmw.db")
    assert done.code == 0, done.err
    done = cli(folder, "publish", "flags.yaml", "-m", "first", "--store", "flagmw.db")
    assert done.code == 0, done.err
    return folder


def store_bytes(folder: Path) -> dict[str, bytes]:
    """Every file of the store ``flagmw.db`` (the database, its WAL and change counter)."""
    return {p.name: p.read_bytes() for p in sorted(folder.glob("flagmw.db*"))}
