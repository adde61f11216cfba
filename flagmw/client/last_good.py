"""The last-known-good file: a client's local copy of the last snapshot and overrides it
served (issue 8 §1).

A worker that starts while its store is unreachable must not silently serve registry
defaults (a killed tool would run again). With ``FlagClient(..., last_good_file=PATH)``
the client writes what it serves to ``PATH`` whenever that changes, and a client that
cannot reach its store at start-up starts from that file instead — reporting itself
unhealthy and stale, with the file's age in its status message, until the store answers.

The file is JSON: the snapshot's metadata and normalised document, the overrides, the
time it was saved, and a SHA-256 over the canonical JSON of all of it. It is written
atomically (a temporary file, then ``os.replace``) and verified when read: a file that is
truncated, edited, or written for another registry is ignored (with a warning), never
half-used.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flagmw.core.canonical import canonical_json, sha256_hex
from flagmw.core.overrides import Override, OverrideKind, ScopeKind
from flagmw.stores.base import SnapshotInfo

__all__ = ["LastGood", "load_last_good", "save_last_good"]

log = logging.getLogger("flagmw")

FORMAT = "flagmw.last_good/1"


@dataclass(frozen=True, slots=True)
class LastGood:
    """What a last-known-good file holds.

    Attributes:
        info: the snapshot's metadata (None: nothing was published when it was saved).
        document: the normalised snapshot document.
        overrides: the overrides in force when it was saved.
        saved_at: when it was saved (seconds since the epoch).
    """

    info: SnapshotInfo | None
    document: Mapping[str, Any]
    overrides: tuple[Override, ...]
    saved_at: float


def _body(
    info: SnapshotInfo | None,
    document: Mapping[str, Any],
    overrides: Sequence[Override],
    saved_at: float,
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "info": None if info is None else dataclasses.asdict(info),
        "document": document,
        "overrides": [
            {**dataclasses.asdict(ov), "kind": ov.kind.value, "scope": ov.scope.value}
            for ov in overrides
        ],
        "saved_at": saved_at,
    }


def save_last_good(
    path: str | os.PathLike[str],
    info: SnapshotInfo | None,
    document: Mapping[str, Any],
    overrides: Sequence[Override],
    saved_at: float,
) -> None:
    """Write the file atomically; a failure is logged, never raised (serving goes on)."""
    body = _body(info, document, overrides, saved_at)
    body["digest"] = sha256_hex(canonical_json(body))
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(body, separators=(",", ":")), encoding="utf-8")
        os.replace(tmp, target)
    except (OSError, TypeError, ValueError) as exc:
        log.warning("flagmw: cannot write the last-known-good file %s: %s", target, exc)
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def load_last_good(path: str | os.PathLike[str], registry_fingerprint: str) -> LastGood | None:
    """The file's content when it is present, intact and written for a snapshot of this
    registry; None otherwise (the reason is logged)."""
    target = Path(path)
    try:
        data = json.loads(target.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("flagmw: last-known-good file %s unreadable (%s); ignored", target, exc)
        return None
    try:
        digest = data.pop("digest")
        if data.get("format") != FORMAT or digest != sha256_hex(canonical_json(data)):
            raise ValueError("its digest does not match its content")
        raw = data["info"]
        info = None if raw is None else SnapshotInfo(**raw)
        if info is not None and info.registry_fingerprint != registry_fingerprint:
            raise ValueError("it was saved for another registry")
        overrides = tuple(
            Override(**{**o, "kind": OverrideKind(o["kind"]), "scope": ScopeKind(o["scope"])})
            for o in data["overrides"]
        )
        return LastGood(info, data["document"], overrides, float(data["saved_at"]))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        log.warning("flagmw: last-known-good file %s ignored: %s", target, exc)
        return None
