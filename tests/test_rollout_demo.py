"""``flagmw demo rollout`` end to end: stages 1 % and 5 % advance, the scripted spike at
25 % rolls back automatically, the waiting candidate run resumes on its pinned version,
new runs get the baseline, the status table and the plot are written, exit 0."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_demo_rollout(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "flagmw.cli", "demo", "rollout", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
    out = proc.stdout
    assert "stage  1 %: 1 candidate tenants, 500 runs → advance: guardrails hold" in out
    assert "stage  5 %: 5 candidate tenants, 100 runs → advance" in out
    assert "→ ROLLBACK: error rate 28.6 % > baseline 0.0 % + 2 points over 28 runs" in out
    assert "a new run of tenant-000 now gets: v1.3.2 (gpt-4o, prompt refund-v6)" in out
    assert (
        "the waiting run hitl-1 resumes on its pinned version: v1.3.3 (gpt-4o-mini, "
        "prompt refund-v7)"
    ) in out
    assert "rollout support-agent-1.3.3: rolled_back, candidate share 0 %" in out
    assert "rollout.rollback support-agent-1.3.3    controller: error rate 28.6 %" in out
    assert (tmp_path / "rollout.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "agents" / "support-agent" / "v1.3.3.yaml").is_file()
    assert proc.stderr == ""
