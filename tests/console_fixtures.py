"""Fixtures of the console tests: a real store with the DESIGN §9 snapshot published,
the console's ASGI app on it, and one API token per role."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import snapshot_part
from fastapi.testclient import TestClient
from store_kinds import STORE_KINDS

from flagmw import FlagClient, FlagRegistry, Store
from flagmw.console import create_app
from flagmw.stores.tokens import ROLES, hash_secret, new_secret, token_store

REFUND = "tools.refund_api.enabled"
PII = "compliance.pii_redaction"


@dataclass
class ConsoleEnv:
    """A console on a real store: ``http`` (a TestClient on the ASGI app), ``store``,
    ``secrets`` (role → token secret), ``registry``."""

    http: TestClient
    store: Store
    secrets: dict[str, str]
    registry: FlagRegistry
    app: Any

    def auth(self, role: str) -> dict[str, str]:
        """The Authorization header of ``role``'s token."""
        return {"Authorization": f"Bearer {self.secrets[role]}"}

    def state(self) -> tuple[Any, ...]:
        """What a refused request must leave unchanged: overrides, head, audit length."""
        head = self.store.head()
        return (
            [o.to_dict() for o in self.store.list_overrides(include_ended=True)],
            head.rev if head else None,
            len(self.store.audit(10_000)),
        )


def make_env(store: Store, registry: FlagRegistry) -> ConsoleEnv:
    """Publish the §9 snapshot, create a token per role, build the app."""
    FlagClient(registry, store).publish(snapshot_part(), author="setup", message="first")
    tokens = token_store(store)
    secrets = {}
    for role in ROLES:
        secret = new_secret()
        tokens.add_token(hash_secret(secret) or "", role, role, actor="setup", at=0.0)
        secrets[role] = secret
    app = create_app(store)
    return ConsoleEnv(TestClient(app), store, secrets, registry, app)


@pytest.fixture(params=["sqlite", "postgres"])
def env(
    request: pytest.FixtureRequest, tmp_path: Path, registry: FlagRegistry
) -> Iterator[ConsoleEnv]:
    store, cleanup = STORE_KINDS[request.param](tmp_path)
    try:
        e = make_env(store, registry)
        with e.http:
            yield e
    finally:
        cleanup()
