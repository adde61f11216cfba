"""The help text of ``flagmw demo`` (kept apart from :mod:`flagmw.demo` so that
``flagmw --help`` and ``flagmw demo --help`` import neither LangGraph nor the agent)."""

from __future__ import annotations

__all__ = ["DEMO_HELP", "DEMO_STEPS"]

#: One line per step of the demo, in order (also printed by the demo as it goes).
DEMO_STEPS = (
    "Set up: a SQLite flag store (flagmw.db) and a SQLite checkpointer (checkpoints.db) "
    "in the working folder; publish snapshot rev 1 from the support agent's flags.yaml.",
    "Two tenants, two overlays: acme (pro plan: gpt-4o-mini, refunds above 100 need "
    "approval, PII redaction required) and globex (enterprise: gpt-4o, threshold 1000) "
    "each get a refund handled by the same wrapped LangGraph agent.",
    "Human approval: a globex refund of 1,250 is above its threshold; the run stops at "
    "interrupt() with its RunConfig pinned in the checkpoint (rev 1).",
    "A new snapshot (rev 2) is published while it waits: it moves globex to "
    "claude-sonnet and switches the knowledge-base index.",
    "The approved run resumes (Command(resume=...)) on a fresh worker (new client, graph "
    "and checkpointer connection) and keeps its pinned config: rev 1, same config_hash, "
    "gpt-4o. A new globex run gets rev 2.",
    "Kill switch in flight: while an acme run is inside its kb_search step, a second OS "
    "process runs `flagmw kill tools.refund_api.enabled --reason 'CRM webhook returns "
    "500' --ttl 3s --actor oncall`. At the next step boundary the refund tool is hidden "
    "from the model; the prompt-injected call to it is refused with a ToolMessage naming "
    "the flag and the reason; the agent escalates and the run completes.",
    "The kill expires by itself after its TTL: a new acme run gets the refund tool back.",
    "Run kill: agent.enabled is killed while a globex run is in flight; the run drains "
    "(checkpoint kept) and, after unkill, resumes and completes with its pinned config.",
    "Summary: a table of every run (tenant, thread, pinned rev, model route, tools "
    "offered, refusals, outcome, config hash) and the audit log (publishes, kills).",
)

#: The help text of ``flagmw demo`` (typer/click help: paragraphs separated by blank
#: lines; ``\b`` keeps the following paragraph's line breaks).
DEMO_HELP = (
    "Replay the Harbor refund-tool incident on a real LangGraph support agent wrapped "
    "with flagmw, in a few seconds.\n\n"
    "The agent (flagmw.examples.support_agent) has refund, knowledge-base search and "
    "escalation tools, a routed model per tenant, a human-approval step and a loop cap, "
    "all driven by flags. Its models are scripted (no hosted model is reachable): they "
    "emit real tool calls from the conversation. Everything else is real: the SQLite "
    "store and checkpointer files in --workdir, the LangGraph runs, and a second OS "
    "process issuing the kill with the flagmw command.\n\n"
    "\b\nSteps:\n" + "\n".join(f"  {i}. {text}" for i, text in enumerate(DEMO_STEPS, 1)) + "\n\n"
    "Traces: none by default; --console-traces prints the spans, --otlp-endpoint URL "
    "exports them over OTLP/HTTP (e.g. http://127.0.0.1:6006 for Arize Phoenix).\n\n"
    "Afterwards, inspect the folder with the usual commands, e.g. "
    "`flagmw --store WORKDIR/flagmw.db history` or `... audit`. Exit code 0 when every "
    "step behaved as described; 1 with one message naming the step that did not."
)
