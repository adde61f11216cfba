"""``flagmw serve`` (the operator console: admin HTTP API and dashboard) and ``flagmw
token create | list | revoke`` (its API tokens, kept hashed in the store)."""

from __future__ import annotations

import ipaddress
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from flagmw.cli.errors import EXIT_CODES_EPILOG, CliError
from flagmw.cli.options import with_session
from flagmw.cli.session import Session

if TYPE_CHECKING:
    from flagmw.stores.base import Store

__all__ = ["register"]

_LOOPBACK_NAMES = {"localhost"}


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback name or address (127.0.0.0/8, ::1, localhost)."""
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _need_console() -> None:
    try:
        import fastapi  # noqa: F401
        import jinja2  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise CliError("the console needs its extra: pip install 'flagmw[console]'") from None


@with_session()
def serve(
    g: Session,
    host: Annotated[str, typer.Option(help="The interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="The port (0: any free one).")] = 8750,
    tls_cert: Annotated[
        str | None, typer.Option("--tls-cert", help="A PEM certificate: serve HTTPS.")
    ] = None,
    tls_key: Annotated[
        str | None, typer.Option("--tls-key", help="The certificate's PEM private key.")
    ] = None,
    webhook: Annotated[
        list[str] | None,
        typer.Option(
            "--webhook",
            help="Deliver kills, overrides, publishes and rollbacks: slack=URL or "
            "pagerduty=URL (routing key from $FLAGMW_PAGERDUTY_ROUTING_KEY). Repeatable.",
        ),
    ] = None,
    code: Annotated[
        list[str] | None,
        typer.Option(
            "--code",
            help="A source tree the Hygiene page scans for flags no code references "
            "(as `flagmw lint --unused`). Repeatable.",
        ),
    ] = None,
    allow_insecure_bind: Annotated[
        bool,
        typer.Option(
            "--allow-insecure-bind",
            help="Serve plain HTTP on a non-loopback interface (tokens travel in clear).",
        ),
    ] = False,
    rollout_tick: Annotated[
        str | None,
        typer.Option(
            "--rollout-tick",
            help="Run the rollout controller every DURATION (e.g. 60s, 1m): advance, roll "
            "back or pause rollouts as `flagmw rollout tick` does; actions go to the webhooks.",
        ),
    ] = None,
    gates: Annotated[
        Path | None,
        typer.Option(
            "--gates",
            help="With --rollout-tick: a quality_gates.yaml; a stage does not advance while "
            "a required gate fails.",
        ),
    ] = None,
) -> None:
    """Serve the operator console: the admin HTTP API (/api/v1, OpenAPI at
    /api/openapi.json) and the dashboard, on the store.

    Binds 127.0.0.1 by default. Another interface needs --tls-cert and --tls-key, or an
    explicit --allow-insecure-bind. Sign in with a token from `flagmw token create`.
    """
    _need_console()
    if (tls_cert is None) != (tls_key is None):
        raise CliError("give both --tls-cert and --tls-key, or neither")
    tls = tls_cert is not None
    if not is_loopback(host) and not tls and not allow_insecure_bind:
        raise CliError(
            f"refusing to serve plain HTTP on {host} (not a loopback interface): give "
            "--tls-cert and --tls-key, or --allow-insecure-bind if a TLS proxy fronts it"
        )
    import os

    import uvicorn

    from flagmw.console.app import create_app
    from flagmw.console.webhooks import parse_webhook

    key = os.environ.get("FLAGMW_PAGERDUTY_ROUTING_KEY", "")
    try:
        hooks = [parse_webhook(spec, key) for spec in webhook or ()]
    except ValueError as exc:
        raise CliError(f"--webhook: {exc}") from None
    interval = _tick_interval(rollout_tick, gates)

    store = g.open_store()
    ticker = None
    try:
        if interval is not None:
            ticker = _rollout_ticker(store, interval, gates, g.actor)
        registry, where = g.find_registry(store)
        g.note(f"registry: {where}")
        app = create_app(
            store,
            registry,
            environment=g.environment,
            max_ttl=g.max_ttl_seconds(),
            secure_cookies=tls,
            webhooks=hooks,
            code_paths=code or (),
            rollout_ticker=ticker,
        )
        scheme = "https" if tls else "http"
        from flagmw.cli.output import write_lines

        write_lines(
            [f"flagmw console on {scheme}://{host}:{port}/ (store {store.name})"], stderr=True
        )
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_level="warning",
            ssl_certfile=tls_cert,
            ssl_keyfile=tls_key,
        )
    finally:
        if ticker is not None:
            ticker.controller.store.close()
        store.close()


def _tick_interval(spec: str | None, gates: Path | None) -> float | None:
    """Seconds between rollout ticks from ``--rollout-tick`` (None: no ticking)."""
    if spec is None:
        if gates is not None:
            raise CliError("--gates applies to --rollout-tick; give both")
        return None
    from flagmw.core.overrides import parse_duration

    try:
        seconds = parse_duration(spec)
    except ValueError as exc:
        raise CliError(f"--rollout-tick: {exc}") from None
    if not 1.0 <= seconds <= 86400.0:
        raise CliError(f"--rollout-tick must be between 1s and 24h, not {spec!r}")
    return seconds


def _rollout_ticker(store: Store, interval: float, gates: Path | None, actor: str) -> Any:
    """The rollout controller on a timer, on ``store``'s rollout store."""
    from flagmw.rollout.controller import RolloutController
    from flagmw.rollout.store import open_rollout_store
    from flagmw.rollout.ticker import RolloutTicker

    spec = None
    if gates is not None:
        from flagmw.rollout.gates import load_gates

        spec = load_gates(gates)
    rs = open_rollout_store(store)
    gate = None
    if spec is not None:
        from flagmw.rollout.gates import gate_callable

        gate = gate_callable(rs, spec)
    return RolloutTicker(
        RolloutController(rs, gate=gate, flags=store),
        interval,
        actor=f"controller (serve, {actor})",
    )


RoleOpt = Annotated[
    str,
    typer.Option(help="viewer, operator, admin or tenant-editor (docs/console.md)."),
]


@with_session()
def token_create(
    g: Session,
    name: Annotated[str, typer.Option(help="The principal: the audited actor of its calls.")],
    role: RoleOpt = "viewer",
) -> None:
    """Create an API token. The secret is printed once; the store keeps its SHA-256."""
    from flagmw.stores.tokens import check_token_name, hash_secret, new_secret, token_store

    check_token_name(name, role)
    store = g.open_store()
    try:
        secret = new_secret()
        digest = hash_secret(secret)
        assert digest is not None
        token = token_store(store).add_token(digest, name, role, actor=g.actor, at=time.time())
    finally:
        store.close()
    g.emit_lines(
        {**token.to_dict(), "secret": secret},
        [
            f"token {token.id} for {token.name} (role {token.role}):",
            f"  {secret}",
            "  shown once: store it now (the store keeps only its hash)",
        ],
    )


@with_session()
def token_list(g: Session) -> None:
    """API tokens (never their secrets), revoked ones included."""
    from flagmw.stores.tokens import token_store

    store = g.open_store()
    try:
        tokens = token_store(store).list_tokens()
    finally:
        store.close()
    lines = [
        f"{t.id}  {t.name}  {t.role}  "
        + ("active" if t.active else f"revoked by {t.revoked_by}: {t.revoke_reason}")
        for t in tokens
    ] or ["no API tokens"]
    g.emit_lines({"tokens": [t.to_dict() for t in tokens]}, lines)


@with_session()
def token_revoke(
    g: Session,
    token_id: Annotated[str, typer.Argument(help="The token id, e.g. tok-3.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (mandatory, audited).")],
) -> None:
    """Revoke an API token: its calls and dashboard sessions fail from now on."""
    from flagmw.stores.tokens import token_store

    if not reason.strip():
        raise CliError("--reason: say why the token is revoked")
    store = g.open_store()
    try:
        token = token_store(store).revoke_token(
            token_id, actor=g.actor, reason=reason.strip(), at=time.time()
        )
    finally:
        store.close()
    g.emit_lines(token.to_dict(), [f"revoked {token.id} ({token.name}, {token.role})"])


def register(app: typer.Typer) -> None:
    """Add ``serve`` and the ``token`` group to ``app``."""
    app.command(epilog=EXIT_CODES_EPILOG)(serve)
    token = typer.Typer(name="token", help="API tokens of the console.", no_args_is_help=True)
    token.command("create", epilog=EXIT_CODES_EPILOG)(token_create)
    token.command("list", epilog=EXIT_CODES_EPILOG)(token_list)
    token.command("revoke", epilog=EXIT_CODES_EPILOG)(token_revoke)
    app.add_typer(token, name="token")
