"""``/healthz`` (the process answers), ``/readyz`` (the store answers) and ``/metrics``
(Prometheus text format: head rev, active overrides, store latency, client staleness,
requests, event-stream clients, webhook deliveries and failures)."""

from __future__ import annotations

import time
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from flagmw.console.state import Console
from flagmw.errors import FlagmwError

__all__ = ["router"]

router = APIRouter(tags=["health"])


def _console(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


@router.get("/healthz", operation_id="healthz")
def healthz() -> dict[str, Any]:
    """The process is up (no store access)."""
    return {"status": "ok"}


@router.get("/readyz", operation_id="readyz", responses={503: {"description": "Not ready"}})
async def readyz(request: Request) -> JSONResponse:
    """Ready once the store answers a read (503 with the reason otherwise)."""
    console = _console(request)
    try:
        state = await anyio.to_thread.run_sync(console.store.read_state, console.clock())
    except FlagmwError as exc:
        return JSONResponse({"status": "unavailable", "detail": str(exc)}, status_code=503)
    head = state.head.rev if state.head else None
    return JSONResponse({"status": "ready", "head_rev": head, "store": console.store.name})


def _line(name: str, value: float, labels: dict[str, str] | None = None) -> str:
    if labels:
        inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        return f"{name}{{{inner}}} {value:g}"
    return f"{name} {value:g}"


@router.get("/metrics", operation_id="metrics", response_class=PlainTextResponse)
def metrics(request: Request) -> PlainTextResponse:
    """Prometheus text exposition format 0.0.4."""
    console = _console(request)
    m = console.metrics
    lines = []
    t0 = time.perf_counter()
    up = 1
    try:
        state = console.store.read_state(console.clock())
        m.store_latency = time.perf_counter() - t0
    except FlagmwError:
        up, state = 0, None
    status = console.client.status()
    kills = sum(1 for o in state.overrides if o.kind.value == "kill") if state else 0
    others = len(state.overrides) - kills if state else 0
    head = state.head.rev if state and state.head else 0
    gauges = [
        ("flagmw_store_up", "1 when the last store read succeeded", up, None),
        ("flagmw_store_read_seconds", "latency of the last store read", m.store_latency, None),
        ("flagmw_head_rev", "the store's head snapshot rev", head, None),
        ("flagmw_served_rev", "the rev the console serves", status.snapshot_rev or 0, None),
        ("flagmw_client_stale", "1 when the console serves an older rev", int(status.stale), None),
        ("flagmw_sse_clients", "open event streams", m.sse_clients, None),
    ]
    for name, help_, value, _ in gauges:
        lines += [f"# HELP {name} {help_}", f"# TYPE {name} gauge", _line(name, value)]
    lines += [
        "# HELP flagmw_active_overrides overrides in force, by kind",
        "# TYPE flagmw_active_overrides gauge",
        _line("flagmw_active_overrides", kills, {"kind": "kill"}),
        _line("flagmw_active_overrides", others, {"kind": "override"}),
        "# HELP flagmw_console_requests_total HTTP responses, by status class",
        "# TYPE flagmw_console_requests_total counter",
    ]
    lines += [
        _line("flagmw_console_requests_total", n, {"code": k})
        for k, n in sorted(m.requests.items())
    ]
    lines += [
        "# HELP flagmw_webhook_deliveries_total webhook deliveries that succeeded",
        "# TYPE flagmw_webhook_deliveries_total counter",
        _line("flagmw_webhook_deliveries_total", m.webhook_deliveries),
        "# HELP flagmw_webhook_failures_total webhook deliveries that failed for good",
        "# TYPE flagmw_webhook_failures_total counter",
        _line("flagmw_webhook_failures_total", m.webhook_failures),
    ]
    return PlainTextResponse(
        "\n".join(lines) + "\n", media_type="text/plain; version=0.0.4; charset=utf-8"
    )
