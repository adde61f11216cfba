"""The console's OpenAPI document, as committed in ``docs/console-openapi.json`` and
checked by ``tests/test_console_openapi.py``.

Regenerate after an API change: ``python -m flagmw.console.openapi >
docs/console-openapi.json``.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["openapi_document"]


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the console's API (a memory store behind it: the
    document does not depend on the store)."""
    from flagmw.console.app import create_app
    from flagmw.stores.memory import MemoryStore

    app = create_app(MemoryStore())
    doc: dict[str, Any] = app.fastapi.openapi()
    return doc


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps(openapi_document(), indent=2, sort_keys=True))
