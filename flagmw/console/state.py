"""The state one console process keeps: the :class:`~flagmw.client.FlagClient` every
route reads and writes through, the token store, dashboard sessions and counters.

The console never resolves or validates on its own: values, provenance and explanations
come from the client (:mod:`flagmw.core.resolve`, :mod:`flagmw.core.explain`), writes go
through the client's admin operations (:mod:`flagmw.client.admin`), so the console works
on every store and says what the command line says.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from flagmw.client.client import FlagClient
from flagmw.console.approvals import Approvals
from flagmw.core.overrides import parse_duration
from flagmw.core.registry import FlagRegistry
from flagmw.core.snapshot import Change
from flagmw.stores.base import Store
from flagmw.stores.tokens import TokenStore, token_store

__all__ = ["Console", "Metrics", "WebSession"]

#: How long a dashboard session lasts without use (seconds).
SESSION_IDLE = 8 * 3600.0
#: How many diffs between two revs are remembered.
DIFF_CACHE = 32


@dataclass
class WebSession:
    """A signed-in dashboard session: the token it was opened with (by hash, so a
    revoked token ends it at the next request) and its CSRF secret."""

    token_hash: str
    csrf: str
    expires_at: float


@dataclass
class Metrics:
    """Counters exported at ``/metrics``."""

    requests: dict[str, int] = field(default_factory=dict)
    sse_clients: int = 0
    store_latency: float = 0.0
    webhook_failures: int = 0
    webhook_deliveries: int = 0
    webhook_last_failure: str | None = None

    def count(self, status: int) -> None:
        key = f"{status // 100}xx"
        self.requests[key] = self.requests.get(key, 0) + 1


class Console:
    """One console: a client on ``store``, its tokens, sessions and counters.

    Args:
        store: any store (memory, SQLite, PostgreSQL, Redis).
        registry: the application's registry; None: the registry stored with the head
            snapshot, followed when a publish changes it.
        environment: the environment values are resolved for.
        max_ttl: the longest TTL of a kill or override (as the CLI's ``--max-ttl``).
        clock: seconds since the epoch.
        secure_cookies: mark the session cookie ``Secure`` (behind TLS).
    """

    def __init__(
        self,
        store: Store,
        registry: FlagRegistry | None = None,
        *,
        environment: str = "production",
        max_ttl: str | float = "24h",
        clock: Callable[[], float] = time.time,
        secure_cookies: bool = False,
        code_paths: Sequence[str] = (),
    ) -> None:
        self.store = store
        self.code_paths = list(code_paths)
        self._unused: tuple[float, str, list[str]] | None = None
        self.fixed_registry = registry
        self.environment = environment
        self.max_ttl = parse_duration(max_ttl)
        self.clock = clock
        self.secure_cookies = secure_cookies
        self.tokens: TokenStore = token_store(store)
        self.lock = threading.RLock()
        self.sessions: dict[str, WebSession] = {}
        self.approvals = Approvals()
        self.metrics = Metrics()
        self._client = self._new_client(self._registry())
        self._seen_head: int | None = self._client.status().head_rev
        self._diffs: OrderedDict[tuple[int, int], list[Change]] = OrderedDict()

    def _registry(self) -> FlagRegistry:
        if self.fixed_registry is not None:
            return self.fixed_registry
        from flagmw.cli.session import stored_registry

        found, _ = stored_registry(self.store)
        return found if found is not None else FlagRegistry([], source="<none>")

    def _new_client(self, registry: FlagRegistry) -> FlagClient:
        return FlagClient(
            registry,
            self.store,
            environment=self.environment,
            clock=self.clock,
            default_ttl=min(4 * 3600.0, self.max_ttl),
            max_ttl=self.max_ttl,
        )

    @property
    def client(self) -> FlagClient:
        """The client, up to date with the store (and with the stored registry when the
        console was given none)."""
        with self.lock:
            client = self._client
            client.poll()
            if self.fixed_registry is None:
                head_rev = client.status().head_rev
                if head_rev != self._seen_head:
                    self._seen_head = head_rev
                    head = self.store.head()
                    if head is not None and head.registry_fingerprint != (
                        client.registry.fingerprint
                    ):  # a publish changed the registry: follow it
                        self._client = client = self._new_client(self._registry())
            return client

    def diff(self, rev_a: int, rev_b: int) -> list[Change]:
        """:meth:`FlagClient.diff`, remembered: revs never change, and diffing two large
        snapshots (10,000 tenants) costs a few hundred milliseconds."""
        key = (rev_a, rev_b)
        with self.lock:
            hit = self._diffs.get(key)
            if hit is not None:
                self._diffs.move_to_end(key)
                return hit
        changes = self.client.diff(rev_a, rev_b)
        with self.lock:
            self._diffs[key] = changes
            while len(self._diffs) > DIFF_CACHE:
                self._diffs.popitem(last=False)
        return changes

    def unused_flags(self) -> list[str] | None:
        """Registry flags no file under :attr:`code_paths` references (``flagmw lint
        --unused``), rescanned at most once a minute; None without code paths."""
        if not self.code_paths:
            return None
        from flagmw.lint.paths import lint_paths

        client = self.client
        fp = client.registry.fingerprint
        now = time.monotonic()
        if self._unused is not None and self._unused[1] == fp and now - self._unused[0] < 60:
            return self._unused[2]
        findings = lint_paths(self.code_paths, client.registry, unused=True)
        keys = sorted(f.message.split("'")[1] for f in findings if f.code == "FM004")
        self._unused = (now, fp, keys)
        return keys

    # -- sessions -----------------------------------------------------------------------

    def open_session(self, token_hash: str) -> tuple[str, WebSession]:
        """A new session id (the cookie value) and its session."""
        sid = secrets.token_urlsafe(32)
        session = WebSession(token_hash, secrets.token_urlsafe(32), self.clock() + SESSION_IDLE)
        with self.lock:
            now = self.clock()
            for old in [k for k, s in self.sessions.items() if s.expires_at <= now]:
                del self.sessions[old]
            self.sessions[sid] = session
        return sid, session

    def session(self, sid: str) -> WebSession | None:
        """The live session ``sid`` (its idle time restarts), or None."""
        with self.lock:
            s = self.sessions.get(sid)
            if s is None or s.expires_at <= self.clock():
                self.sessions.pop(sid, None)
                return None
            s.expires_at = self.clock() + SESSION_IDLE
            return s

    def close_session(self, sid: str) -> None:
        """Sign out."""
        with self.lock:
            self.sessions.pop(sid, None)
