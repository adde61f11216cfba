"""Take the screenshots of docs/tracing.md from a real Arize Phoenix running on loopback.

1. Produce traces: by default a scripted incident on the support agent of ``flagmw demo``
   (examples/support_agent) wrapped with ``flagmw.wrap`` — two tenants, a refund waiting
   for human approval, a kill switch on the refund tool while it waits, the resumed run
   refused at the tool, and a new run after the kill — exported with
   ``flagmw.tracing.configure(otlp_endpoint=...)``; or, with ``--source demo``, by running
   ``flagmw demo --otlp-endpoint URL``.
2. Find the root spans through Phoenix's REST and GraphQL APIs.
3. Open the span in Phoenix's UI with headless Chromium (DevTools protocol), click the
   Attributes / Events tab, and save PNGs: the root span of a run (its pinned config),
   the events of the run with the most flagmw events, and the attributes of a run a kill
   reached in flight (``flagmw.effective.*``, ``flagmw.override_ids``).

Usage (from the repository root; Phoenix in ``.phoenix-venv``, see docs/tracing.md)::

    .venv/bin/python scripts/phoenix_screenshot.py --start-phoenix
    .venv/bin/python scripts/phoenix_screenshot.py --phoenix http://127.0.0.1:6006
    .venv/bin/python scripts/phoenix_screenshot.py --start-phoenix --source demo

Only loopback is contacted: Chromium is started with a host-resolver rule that makes
every other name fail to resolve.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PHOENIX_BIN = ROOT / ".phoenix-venv" / "bin" / "phoenix"
CHROME_CANDIDATES = (
    "/usr/lib/chromium/chromium-headless-shell",  # Debian chromium-headless-shell
    "/usr/lib/chromium/chromium",  # Debian chromium (use with --headless)
)


def log(msg: str) -> None:
    print(f"[phoenix_screenshot] {msg}", file=sys.stderr, flush=True)


# -- Phoenix ------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=1) as r:
            return bool(r.status == 200)
    except OSError:
        return False


@contextmanager
def phoenix_server(port: int) -> Iterator[str]:
    """Start ``phoenix serve`` from .phoenix-venv on 127.0.0.1:<port> with the offline
    settings of docs/tracing.md; stop it (by its pid) on exit."""
    if not PHOENIX_BIN.exists():
        sys.exit(f"{PHOENIX_BIN} not found: install Phoenix first (docs/tracing.md)")
    workdir = tempfile.mkdtemp(prefix="phoenix-")
    env = {
        **os.environ,
        "PHOENIX_WORKING_DIR": workdir,
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_PORT": str(port),
        "PHOENIX_GRPC_PORT": str(_free_port()),
        "PHOENIX_TELEMETRY_ENABLED": "false",
        "PHOENIX_ALLOW_EXTERNAL_RESOURCES": "false",
        "PHOENIX_DISABLE_AGENT_ASSISTANT": "true",
        "PHOENIX_ENABLE_MCP_SERVER": "false",
    }
    logfile = open(Path(workdir) / "phoenix.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [str(PHOENIX_BIN), "serve"], env=env, stdout=logfile, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while not _healthy(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"Phoenix did not start; see {logfile.name}")
            time.sleep(0.3)
        log(f"Phoenix {url} (working dir {workdir})")
        yield url
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        logfile.close()


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


def _graphql(base: str, query: str, variables: dict[str, Any] | None = None) -> Any:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    req = urllib.request.Request(
        f"{base}/graphql", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        out = json.loads(r.read())
    if out.get("errors"):
        raise RuntimeError(f"Phoenix GraphQL error: {out['errors']}")
    return out["data"]


def root_spans(base: str, project: str, timeout: float = 30.0) -> list[dict[str, Any]]:
    """The ``invoke_agent …`` spans of ``project`` (REST, flat dotted attributes), waiting
    until they stop arriving."""
    deadline = time.monotonic() + timeout
    last: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        try:
            data = _get(f"{base}/v1/projects/{project}/spans?limit=1000")["data"]
        except OSError:
            data = []
        spans = [s for s in data if s["name"].startswith("invoke_agent ")]
        if spans and len(spans) == len(last):
            return spans
        last = spans
        time.sleep(1.0)
    if last:
        return last
    sys.exit(f"no invoke_agent spans arrived in Phoenix project {project!r}")


def ui_url(base: str, project: str, trace_id: str, span_id: str) -> str:
    """The Phoenix UI address of one span (global ids from GraphQL)."""
    data = _graphql(base, "{ projects { edges { node { id name } } } }")
    pid = next(e["node"]["id"] for e in data["projects"]["edges"] if e["node"]["name"] == project)
    q = """query ($pid: ID!, $tid: ID!) { node(id: $pid) { ... on Project {
             trace(traceId: $tid) { spans(first: 500) { edges { node { id spanId } } } } } } }"""
    found = _graphql(base, q, {"pid": pid, "tid": trace_id})["node"]["trace"]["spans"]["edges"]
    sid = next(e["node"]["id"] for e in found if e["node"]["spanId"] == span_id)
    return f"{base}/projects/{pid}/traces/{trace_id}?selectedSpanNodeId={sid}"


# -- traces ---------------------------------------------------------------------------------------


def scripted_incident(endpoint: str, project: str, workdir: Path, openinference: bool) -> None:
    """The refund-tool incident on the wrapped support agent, exported to ``endpoint``
    (with OpenInference's LangChain instrumentation when installed and asked for, so
    the graph's own spans appear under flagmw's root span)."""
    from langchain_core.messages import HumanMessage
    from langgraph.checkpoint.sqlite import SqliteSaver
    from langgraph.types import Command

    import flagmw
    from flagmw.examples.support_agent.agent import FLAGS_PATH, build_graph, load_registry
    from flagmw.tracing import configure

    provider = configure(otlp_endpoint=endpoint, service_name=project)
    if openinference:
        try:
            from openinference.instrumentation.langchain import LangChainInstrumentor
        except ImportError:
            log("openinference-instrumentation-langchain not installed: root spans only")
        else:
            LangChainInstrumentor().instrument(tracer_provider=provider)
    client = flagmw.FlagClient(
        load_registry(), flagmw.SQLiteStore(workdir / "flagmw.db"), environment="production"
    )
    client.publish(FLAGS_PATH, author="platform", message="support agent flags v1")
    conn = sqlite3.connect(workdir / "checkpoints.db", check_same_thread=False)
    graph = flagmw.wrap(build_graph(checkpointer=SqliteSaver(conn)), client)  # RunTracer()

    def config(thread: str, tenant: str, user: str, plan: str) -> dict[str, Any]:
        conf = {"thread_id": thread, "tenant_id": tenant, "user_id": user, "plan": plan}
        return {"configurable": conf}

    def ask(text: str) -> dict[str, Any]:
        return {"messages": [HumanMessage(text)]}

    # 1. globex (enterprise): a small refund goes straight through
    graph.invoke(
        ask("Please refund order GX-2001, $40, it arrived broken"),
        config("th-globex-1", "globex", "g-ops-7", "enterprise"),
    )
    # 2. acme (pro): a refund above acme's approval threshold waits for a human
    acme = config("th-acme-1", "acme", "u-17", "pro")
    out = graph.invoke(ask("I need a refund for order A-1042, $180 — wrong size"), acme)
    assert "__interrupt__" in out, "expected the refund to wait for approval"
    # 3. while it waits, the CRM refund webhook breaks: kill the refund tool
    kill = client.kill(
        "tools.refund_api.enabled",
        reason="CRM refund webhook returns 500 (INC-4711)",
        actor="oncall@acme-support",
        ttl="2h",
    )
    # 4. the reviewer approves; the resumed run reaches the tool step with the kill on
    graph.invoke(Command(resume={"approved": True, "reviewer": "maria"}), acme)
    # 5. a new acme conversation after the kill: the tool is hidden and refused
    graph.invoke(ask("Refund order A-1077, $35 please"), config("th-acme-2", "acme", "u-23", "pro"))
    provider.force_flush()
    conn.close()
    client.close()
    log(f"incident exported to {endpoint} (kill {kill.id})")


def demo_incident(endpoint: str, workdir: Path) -> None:
    """``flagmw demo --otlp-endpoint URL`` (the main job) as the source of traces."""
    cmd = [str(Path(sys.executable).with_name("flagmw")), "demo", "--otlp-endpoint", endpoint]
    cmd += ["--workdir", str(workdir)]
    log("running " + " ".join(cmd))
    subprocess.run(cmd, check=True, timeout=600)


# -- Chromium -------------------------------------------------------------------------------------


def find_chrome(explicit: str | None) -> str:
    for candidate in (explicit, *CHROME_CANDIDATES, shutil.which("chromium")):
        if candidate and Path(candidate).exists():
            return candidate
    sys.exit("no Chromium found: apt-get install -y chromium-headless-shell fonts-dejavu-core")


@contextmanager
def chrome(binary: str, width: int, height: int) -> Iterator[str]:
    """A headless Chromium with the DevTools protocol on a loopback port; yields the
    websocket URL of its page. Every host name but 127.0.0.1 fails to resolve."""
    port = _free_port()
    profile = tempfile.mkdtemp(prefix="chrome-")
    args = [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-default-apps",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
        f"--window-size={width},{height}",
        f"--user-data-dir={profile}",
        f"--remote-debugging-port={port}",
        "--remote-debugging-address=127.0.0.1",
        "about:blank",
    ]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                pages = _get(f"http://127.0.0.1:{port}/json")
                page = next(p for p in pages if p.get("type") == "page")
                yield str(page["webSocketDebuggerUrl"])
                break
            except (OSError, StopIteration):
                if time.monotonic() > deadline or proc.poll() is not None:
                    sys.exit("Chromium did not start its DevTools endpoint")
                time.sleep(0.2)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(profile, ignore_errors=True)


class DevTools:
    """The few DevTools-protocol calls a screenshot needs."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.n = 0

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.n += 1
        await self.ws.send(json.dumps({"id": self.n, "method": method, "params": params}))
        while True:
            msg = json.loads(await self.ws.recv())
            if msg.get("id") == self.n:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return dict(msg.get("result", {}))

    async def js(self, expression: str) -> Any:
        out = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return out.get("result", {}).get("value")

    async def wait_for(self, expression: str, timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = await self.js(expression)
            if value:
                return value
            await asyncio.sleep(0.3)
        raise TimeoutError(f"page never satisfied: {expression}")


# Opens the first collapsed event row whose title contains the name (one per call: the
# rows re-render after each click).
EXPAND_EVENT = """(() => {
  const name = %s;
  const buttons = [...document.querySelectorAll('button[slot="trigger"]')];
  const b = buttons.find(b => b.textContent.includes(name));
  if (!b) return false;
  if (b.getAttribute('aria-expanded') !== 'true') b.click();
  return true;
})()"""

# Widens the key column of attribute tables (320 px in Phoenix 20), as dragging its edge
# would, so long keys such as flagmw.flag.tools.refund_api.enabled.source are readable.
WIDEN_KEYS = """(() => {
  const ths = [...document.querySelectorAll('th')].filter(th => th.style.width === '320px');
  ths.forEach(th => { th.style.width = '%dpx'; });
  return ths.length;
})()"""

CLICK_TAB = """(() => {
  const want = %s;
  const tabs = [...document.querySelectorAll('[role="tab"]')];
  const tab = tabs.find(t => t.textContent.trim().startsWith(want));
  if (!tab) return false;
  tab.click();
  return true;
})()"""


async def shoot(
    ws_url: str,
    url: str,
    tab: str,
    expect: str,
    out: Path,
    width: int,
    height: int,
    expand: tuple[str, ...] = (),
    key_width: int = 440,
) -> None:
    import websockets

    async with websockets.connect(ws_url, max_size=64 * 1024 * 1024) as ws:
        dt = DevTools(ws)
        await dt.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        await dt.call("Page.enable")
        await dt.call("Page.navigate", url=url)
        await dt.wait_for(
            f"document.body && document.body.innerText.includes({json.dumps(expect)})"
        )
        await dt.wait_for(CLICK_TAB % json.dumps(tab))
        await dt.wait_for(f"document.body.innerText.includes({json.dumps(expect)})")
        for name in expand:
            if await dt.js(EXPAND_EVENT % json.dumps(name)):
                await asyncio.sleep(0.5)
        await dt.js(WIDEN_KEYS % key_width)
        await asyncio.sleep(1.5)  # let the side panel finish its animation
        shot = await dt.call("Page.captureScreenshot", format="png")
        out.write_bytes(base64.b64decode(shot["data"]))
        log(f"wrote {out} ({tab} tab of {url})")


# -- main -----------------------------------------------------------------------------------------


def pick(spans: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(the span for the Attributes shot, the span for the Events shot, the span for the
    shot of what reached a run): a new run whose pinned config carries a kill, the run
    with the most flagmw events, and a run a kill reached in flight (one with a tool
    refusal first)."""

    def attrs(s: dict[str, Any]) -> dict[str, Any]:
        return dict(s.get("attributes") or {})

    with_kill = [
        s
        for s in spans
        if attrs(s).get("flagmw.pinned_override_ids") and not attrs(s).get("flagmw.resumed")
    ]
    first = (with_kill or spans)[-1]
    second = max(spans, key=lambda s: sum(e["name"].startswith("flagmw.") for e in s["events"]))
    reached = [s for s in spans if attrs(s).get("flagmw.change_count")]
    third = max(
        reached or spans,
        key=lambda s: any(e["name"] == "flagmw.tool_refused" for e in s["events"]),
    )
    return first, second, third


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--phoenix", default=None, help="a running Phoenix (default: start one)")
    p.add_argument("--start-phoenix", action="store_true", help="start Phoenix from .phoenix-venv")
    p.add_argument("--source", choices=("scripted", "demo"), default="scripted")
    p.add_argument("--project", default="flagmw-demo", help="Phoenix project (service.name)")
    p.add_argument("--out-dir", type=Path, default=ROOT / "docs" / "img")
    p.add_argument("--chrome", default=None, help="Chromium binary")
    p.add_argument("--width", type=int, default=1800)
    p.add_argument("--height", type=int, default=1950, help="of the Attributes shot")
    p.add_argument(
        "--no-openinference",
        action="store_true",
        help="do not instrument LangChain with OpenInference (graph and node spans under "
        "the root span) even when it is installed",
    )
    args = p.parse_args(argv)
    if not args.start_phoenix and not args.phoenix:
        p.error("give --phoenix URL or --start-phoenix")
    binary = find_chrome(args.chrome)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    with contextlib_phoenix(args) as base:
        work = Path(tempfile.mkdtemp(prefix="flagmw-shot-"))
        if args.source == "scripted":
            scripted_incident(base, args.project, work, not args.no_openinference)
        else:
            demo_incident(base, work)
        spans = root_spans(base, args.project)
        log(f"{len(spans)} invoke_agent spans in project {args.project!r}")
        attrs_span, events_span, reached_span = pick(spans)
        expand = ("flagmw.flag_changed", "flagmw.tool_refused", "flagmw.run_drained")
        shots = [
            (attrs_span, "Attributes", "flagmw", "phoenix-root-span.png", (), args.height),
            (events_span, "Events", "flagmw.", "phoenix-events.png", expand, 1150),
            (reached_span, "Attributes", "effective", "phoenix-reached.png", (), args.height),
        ]
        with chrome(binary, args.width, args.height) as ws_url:
            for span, tab, expect, name, opened, height in shots:
                ctx = span["context"]
                url = ui_url(base, args.project, ctx["trace_id"], ctx["span_id"])
                out = args.out_dir / name
                asyncio.run(shoot(ws_url, url, tab, expect, out, args.width, height, opened))
    return 0


@contextmanager
def contextlib_phoenix(args: argparse.Namespace) -> Iterator[str]:
    if args.phoenix:
        if not _healthy(args.phoenix):
            sys.exit(f"no Phoenix at {args.phoenix} (GET /healthz failed)")
        yield args.phoenix.rstrip("/")
        return
    with phoenix_server(_free_port()) as base:
        yield base


if __name__ == "__main__":
    sys.exit(main())
