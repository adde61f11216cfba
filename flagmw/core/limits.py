"""Resource limits for untrusted documents (issue 9 item 3).

A flags file is untrusted input: a 1.4 KB YAML alias bomb ran > 180 s and > 5 GB, a
10,000-deep list raised ``RecursionError``, ``validate /dev/zero`` ran out of memory.
Every document flagmw reads (flags files, JSON, stored snapshots re-validated) is held
to these limits; each refusal is one located validation problem that names the limit
and the environment variable that raises it.

=====================================  =========================  ===================
limit                                  environment variable       default
=====================================  =========================  ===================
file size, bytes                       ``FLAGMW_MAX_FILE_BYTES``  100 MiB
nesting depth (mappings and lists)     ``FLAGMW_MAX_DEPTH``       64
nodes built, YAML aliases expanded     ``FLAGMW_MAX_NODES``       5,000,000
extra nodes from aliases and merges    ``FLAGMW_MAX_ALIAS_NODES`` 100,000
=====================================  =========================  ===================

The defaults admit any flags file a person writes (a 50 MB, 100k-tenant file loads)
and refuse a bomb in milliseconds.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["DocumentLimits", "limits"]


@dataclass(frozen=True, slots=True)
class DocumentLimits:
    """The limits in force (see the module docs).

    Attributes:
        max_file_bytes: largest file read, in bytes.
        max_depth: deepest nesting of mappings and lists.
        max_nodes: most nodes built for one document.
        max_alias_nodes: most nodes built beyond the document's own (alias and merge
            expansion).
    """

    max_file_bytes: int = 100 * 1024 * 1024
    max_depth: int = 64
    max_nodes: int = 5_000_000
    max_alias_nodes: int = 100_000


_ENV = {
    "max_file_bytes": "FLAGMW_MAX_FILE_BYTES",
    "max_depth": "FLAGMW_MAX_DEPTH",
    "max_nodes": "FLAGMW_MAX_NODES",
    "max_alias_nodes": "FLAGMW_MAX_ALIAS_NODES",
}


def env_name(limit: str) -> str:
    """The environment variable of a limit (``"max_depth"`` → ``FLAGMW_MAX_DEPTH``)."""
    return _ENV[limit]


def limits() -> DocumentLimits:
    """The limits, with any of the environment variables applied (read at each call:
    cheap, and a test or an operator can change them). A variable that is not a
    positive integer is ignored (the default stays): a typo never lifts a limit."""
    values: dict[str, int] = {}
    for name, var in _ENV.items():
        raw = os.environ.get(var, "").strip().replace("_", "")
        if raw.isdigit() and 0 < len(raw) <= 18 and int(raw) > 0:
            values[name] = int(raw)
    return DocumentLimits(**values)
