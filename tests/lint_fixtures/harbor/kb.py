"""Knowledge-base access: flags read the flagmw way, and configuration that is not a
feature toggle (paths, credentials, regions) read from the environment."""

import os
from pathlib import Path

from flagmw import EvaluationContext, FlagClient, current

INDEX_DIR = Path(os.environ.get("KB_INDEX_DIR", "/var/lib/harbor/kb")).resolve()
OPENAI_API_KEY = os.getenv("OPENAI_API_KEY", "")
REGION = os.environ.get("AWS_REGION", "eu-west-1")
BEHIND_PROXY = "HTTPS_PROXY" in os.environ


def search(query: str, cache: dict[str, list[str]]) -> list[str]:
    rc = current()
    if not rc.enabled("tools.kb_search.enabled"):
        return []
    hits = cache.get("search.results") or [f"{INDEX_DIR}/{query}"]
    return hits[: rc["loop.max_iterations"]]


def enabled_outside_a_run(client: FlagClient, tenant: str) -> bool:
    return client.is_enabled("tools.kb_search.enabled", EvaluationContext(tenant_id=tenant))


def local_override(key: str) -> str:
    # Built from the key at run time (like flagmw's own FF_ reading): not a literal.
    name = "FF_" + key.upper().replace(".", "_")
    return os.environ.get(name, "")
