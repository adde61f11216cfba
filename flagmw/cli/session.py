"""The session of one ``flagmw`` invocation: the global options, and what every command
needs from them (the store, the application's registry, a client, the output).

The library (registry, client, stores) is imported when a command asks for it, not with
this module, so ``flagmw --help`` and a failing argument check stay fast.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flagmw.cli.errors import CliError, one_line

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console

    from flagmw.client.client import FlagClient
    from flagmw.core.registry import FlagRegistry
    from flagmw.core.source import Locator
    from flagmw.stores.base import Store

__all__ = [
    "DEFAULT_ENVIRONMENT",
    "DEFAULT_MAX_TTL",
    "DEFAULT_REGISTRY",
    "DEFAULT_STORE",
    "DEFAULT_TTL_SECONDS",
    "Session",
    "after_command",
    "default_actor",
    "root_session",
    "stored_registry",
]

DEFAULT_STORE = "flagmw.db"
DEFAULT_REGISTRY = "flags.yaml"
DEFAULT_ENVIRONMENT = "production"
DEFAULT_MAX_TTL = "24h"
#: The TTL of a kill or override when ``--ttl`` is not given (capped by ``--max-ttl``).
DEFAULT_TTL_SECONDS = 4 * 3600.0


def default_actor() -> str:
    """``$FLAGMW_ACTOR``, else the OS user name, else ``uid:<n>``."""
    actor = os.environ.get("FLAGMW_ACTOR", "").strip()
    if actor:
        return actor
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no passwd entry (some containers)
        return f"uid:{os.getuid()}" if hasattr(os, "getuid") else "unknown"


@dataclass
class Session:
    """The global options of one invocation, and the helpers commands share.

    Attributes:
        store: the store's name (``--store``; ``$FLAGMW_STORE``; ``./flagmw.db``).
        environment: the client's environment (``--environment``; ``$FLAGMW_ENVIRONMENT``;
            ``production``).
        registry: an explicit ``--registry`` file, or None.
        actor: who acts (``--actor``; ``$FLAGMW_ACTOR``; the OS user).
        max_ttl: the longest TTL accepted, e.g. ``"24h"`` (``--max-ttl``;
            ``$FLAGMW_MAX_TTL``).
        json: write one JSON document to stdout instead of tables.
        verbose: say which store and registry were used; tracebacks for internal errors.
    """

    store: str = DEFAULT_STORE
    environment: str = DEFAULT_ENVIRONMENT
    registry: str | None = None
    actor: str = ""
    max_ttl: str = DEFAULT_MAX_TTL
    json: bool = False
    verbose: bool = False

    # -- output --

    @property
    def out(self) -> Console:
        """The stdout console (tables)."""
        from flagmw.cli.output import console

        return console()

    def emit(self, document: Any, render: Callable[[Console], None]) -> None:
        """Write ``document`` as JSON (``--json``) or call ``render`` with the console."""
        if self.json:
            from flagmw.cli.output import write_json

            write_json(document)
        else:
            render(self.out)

    def emit_lines(self, document: Any, lines: Iterable[str]) -> None:
        """Write ``document`` as JSON (``--json``) or ``lines`` as plain text: for the
        commands an on-call engineer runs in an incident (``kill``, ``override``,
        ``renew``, ``unkill``), whose output is a few lines, so they start without
        loading rich."""
        from flagmw.cli.output import write_json, write_lines

        if self.json:
            write_json(document)
        else:
            write_lines(lines)

    def note(self, message: str) -> None:
        """A ``--verbose`` remark on stderr."""
        if self.verbose:
            from flagmw.cli.output import write_lines

            write_lines([f"flagmw: {one_line(message)}"], stderr=True)

    # -- store, registry, client --

    def open_store(self, *, create: bool = False) -> Store:
        """The store (see :func:`flagmw.cli.stores.open_store`)."""
        from flagmw.cli.stores import open_store

        store = open_store(self.store, create=create)
        self.note(f"store: {store.name}")
        return store

    def max_ttl_seconds(self) -> float:
        """``--max-ttl`` in seconds.

        Raises:
            CliError: not a positive duration.
        """
        from flagmw.core.overrides import parse_duration

        try:
            return parse_duration(self.max_ttl)
        except ValueError as exc:
            raise CliError(f"--max-ttl: {exc}") from None

    def find_registry(
        self,
        store: Store | None,
        *,
        document: tuple[Any, Locator] | None = None,
        check_schemas: bool = True,
    ) -> tuple[FlagRegistry | None, str]:
        """The application's registry, and where it came from.

        Order: ``--registry FILE``; the ``flags:`` section of ``document`` (the file
        being validated or published); ``$FLAGMW_REGISTRY``; ``./flags.yaml`` when it
        has a ``flags:`` section; the registry stored with the store's head snapshot
        (so an operator without the source tree can still kill a flag). ``(None, …)``
        when none is found.

        Args:
            check_schemas: False for the incident commands: each ``json`` flag's JSON
                schema is checked when that flag first checks a value, not when the
                registry is loaded (see :meth:`FlagRegistry.from_dict`).

        Raises:
            ValidationError: a registry file that is invalid (every problem).
        """
        from flagmw.core.registry import FlagRegistry
        from flagmw.core.source import load_document

        if self.registry:
            reg = FlagRegistry.from_yaml(self.registry, check_schemas=check_schemas)
            return reg, f"--registry {self.registry}"
        if document is not None:
            data, locator = document
            if isinstance(data, Mapping) and "flags" in data:
                reg = FlagRegistry.from_dict(data, locator=locator, check_schemas=check_schemas)
                return reg, f"the flags: section of {locator.source}"
        env_file = os.environ.get("FLAGMW_REGISTRY", "").strip()
        if env_file:
            reg = FlagRegistry.from_yaml(env_file, check_schemas=check_schemas)
            return reg, f"$FLAGMW_REGISTRY ({env_file})"
        local = Path(DEFAULT_REGISTRY)
        if local.is_file():
            data, locator = load_document(local)
            if isinstance(data, Mapping) and "flags" in data:
                reg = FlagRegistry.from_dict(data, locator=locator, check_schemas=check_schemas)
                return reg, f"./{DEFAULT_REGISTRY}"
        if store is not None:
            return stored_registry(store, check_schemas=check_schemas)
        return None, "none"

    def find_registry_without_store(
        self, *, document: tuple[Any, Locator] | None = None
    ) -> tuple[FlagRegistry | None, str]:
        """:meth:`find_registry` for commands that do not need the store otherwise
        (``validate``, ``lint``): the store is opened only as the last resort, and only
        when its file exists."""
        registry, where = self.find_registry(None, document=document)
        if registry is not None:
            return registry, where
        try:
            store = self.open_store()
        except CliError:
            return None, where
        try:
            return stored_registry(store)
        finally:
            store.close()

    def registry_or_fail(
        self,
        store: Store | None,
        *,
        document: tuple[Any, Locator] | None = None,
        check_schemas: bool = True,
    ) -> FlagRegistry:
        """:meth:`find_registry`, or a clear error when there is none."""
        registry, where = self.find_registry(store, document=document, check_schemas=check_schemas)
        if registry is None:
            raise CliError(
                "no flag registry found: pass --registry FILE, set FLAGMW_REGISTRY, run in "
                f"a folder with {DEFAULT_REGISTRY}, or publish a snapshot to the store first"
            )
        self.note(f"registry: {where} ({len(registry)} flags)")
        return registry

    def client(
        self,
        *,
        create: bool = False,
        registry: str = "required",
        document: tuple[Any, Locator] | None = None,
        check_schemas: bool = True,
    ) -> FlagClient:
        """A :class:`FlagClient` on the store.

        Args:
            create: create a missing store (``flagmw init`` only).
            document: the loaded file being published, whose ``flags:`` section is a
                registry candidate (see :meth:`find_registry`).
            registry: ``"required"`` (:meth:`find_registry`, an error when none),
                ``"optional"`` (an empty registry when none) or ``"stored"`` (the head's
                stored registry: for commands that only read snapshots, so a local
                ``flags.yaml`` that drifted does not matter).
            check_schemas: False for the incident commands (``kill``, ``override``,
                ``renew``, ``unkill``): JSON schemas are checked when a value of their
                flag is, so a broken schema of an unrelated flag cannot stop a kill (see
                :meth:`find_registry`).
        """
        from flagmw.client.client import FlagClient
        from flagmw.core.registry import FlagRegistry

        store = self.open_store(create=create)
        try:
            if registry == "required":
                reg = self.registry_or_fail(store, document=document, check_schemas=check_schemas)
            elif registry == "optional":
                found, where = self.find_registry(store, check_schemas=check_schemas)
                reg = found if found is not None else FlagRegistry([], source="<none>")
                self.note(f"registry: {where}")
            else:
                found, where = stored_registry(store, check_schemas=check_schemas)
                reg = found if found is not None else FlagRegistry([], source="<none>")
                self.note(f"registry: {where}")
            max_ttl = self.max_ttl_seconds()
            return FlagClient(
                reg,
                store,
                environment=self.environment,
                default_ttl=min(DEFAULT_TTL_SECONDS, max_ttl),
                max_ttl=max_ttl,
            )
        except BaseException:
            store.close()
            raise


def stored_registry(store: Store, *, check_schemas: bool = True) -> tuple[FlagRegistry | None, str]:
    """The registry stored with the store's head snapshot, and a description
    (``check_schemas``: see :meth:`FlagRegistry.from_dict`)."""
    from flagmw.core.registry import FlagRegistry
    from flagmw.core.source import Locator

    head = store.head()
    if head is None:
        return None, "none (nothing published)"
    record = store.get_snapshot(head.rev)
    locator = Locator(f"{store.name} rev {head.rev} registry")
    return (
        FlagRegistry.from_dict(record.registry, locator=locator, check_schemas=check_schemas),
        f"the registry stored with rev {head.rev} in {store.name}",
    )


def root_session(
    store: str | None,
    environment: str | None,
    registry: str | None,
    actor: str | None,
    max_ttl: str | None,
    json_output: bool,
    verbose: bool,
) -> Session:
    """The session from the options given before the command (and the environment)."""
    return Session(
        store=store or os.environ.get("FLAGMW_STORE") or DEFAULT_STORE,
        environment=environment or os.environ.get("FLAGMW_ENVIRONMENT") or DEFAULT_ENVIRONMENT,
        registry=registry,
        actor=actor or default_actor(),
        max_ttl=max_ttl or os.environ.get("FLAGMW_MAX_TTL") or DEFAULT_MAX_TTL,
        json=json_output,
        verbose=verbose,
    )


def after_command(base: Session, **given: Any) -> Session:
    """``base`` (the options before the command) with the global options given after the
    command name, which win: ``given`` maps a :class:`Session` field to its value, and
    None or False means "not given after the command". Both front-ends use it (typer's
    :func:`~flagmw.cli.options.with_session` and :mod:`flagmw.cli.incident`)."""
    return replace(base, **{name: value for name, value in given.items() if value})
