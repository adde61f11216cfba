"""Steps 1-5 of ``flagmw demo``: set up the store and checkpointer, two tenants with
two overlays, a run waiting for human approval, a new snapshot published while it
waits, and its resume on a fresh worker with the pinned config kept.
"""

from __future__ import annotations

import shutil

import yaml
from langchain_core.messages import ToolMessage
from langgraph.types import Command
from rich.markup import escape
from rich.table import Table

from flagmw.client.client import FlagClient
from flagmw.core.context import EvaluationContext

# flagmw.examples is installed from examples/ (a package-dir mapping mypy cannot follow)
from flagmw.examples.support_agent.agent import (  # type: ignore[import-not-found,unused-ignore]
    FLAGS_PATH,
)
from flagmw.examples.support_agent.output import routes, short  # type: ignore[import-not-found,unused-ignore]
from flagmw.examples.support_agent.runner import (  # type: ignore[import-not-found,unused-ignore]
    ROUTE,
    DemoFailure,
    Row,
    Runner,
    Worker,
    expect,
)
from flagmw.stores.sqlite import SQLiteStore

__all__ = ["Story"]


class Story(Runner):  # type: ignore[misc,unused-ignore]
    """The first five steps (each prints what happened and checks it)."""

    def setup(self) -> None:
        self._step("Set up the store, the checkpointer and snapshot rev 1")
        for path in (self.db, self.checkpoints):
            if path.exists():
                raise DemoFailure(
                    f"{path} already exists: the demo needs a new or empty --workdir "
                    "(remove the folder or choose another)"
                )
        self.wd.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(FLAGS_PATH, self.flags)
        self.ops = FlagClient(self.registry, SQLiteStore(self.db, create=True))
        res = self.ops.publish(
            self.flags,
            author="platform-team",
            message="Support agent flags: tenants acme and globex, refund-assistant route",
        )
        expect(res.rev == 1, f"setup: the first publish made rev {res.rev}, not rev 1")
        self.out.print(f"  working folder  {self.wd}")
        self.out.print(f"  flag store      {self.db}  (SQLite, WAL)")
        self.out.print(f"  checkpointer    {self.checkpoints}  (langgraph SqliteSaver)")
        self.out.print(f"  flags file      {self.flags}  ({len(self.registry)} flags)")
        self._ok(f"published rev {res.rev} ({res.content_hash[:19]}...) by platform-team")

    def tenants(self, worker: Worker) -> None:
        self._step("Two tenants, two overlays")
        ops = self._ops
        contexts = {
            "acme": EvaluationContext(tenant_id="acme", user_id="u-17", plan="pro", route=ROUTE),
            "globex": EvaluationContext(
                tenant_id="globex", user_id="u-9", plan="enterprise", route=ROUTE
            ),
        }
        rcs = {t: ops.resolve(ctx) for t, ctx in contexts.items()}
        table = Table(title="What each tenant's runs resolve to (value, and the layer that won)")
        table.add_column("flag")
        for t in contexts:
            table.add_column(t)
        for key in (
            "model.primary",
            "model.fallbacks",
            "refund.approval_threshold",
            "compliance.pii_redaction",
            "prompt.style",
            "loop.max_iterations",
        ):
            cells = [
                f"{rcs[t][key]!s}  [dim]{escape(rcs[t].provenance[key].describe())}[/]"
                for t in contexts
            ]
            table.add_row(key, *cells)
        self.out.print(table)
        expect(
            rcs["acme"]["model.primary"] != rcs["globex"]["model.primary"],
            "tenants: acme and globex should resolve to different model routes",
        )
        tool_out: dict[str, str] = {}
        for tenant, user, plan, text in (
            ("acme", "u-17", "pro", "Hi, please refund order A-1042, $40 - wrong size."),
            ("globex", "u-9", "enterprise", "Please refund order G-2201, $300, duplicate charge."),
        ):
            row, result = self._ask(
                worker,
                thread=f"{tenant}-1",
                tenant=tenant,
                user=user,
                plan=plan,
                text=text,
            )
            self._show_run(row, result["messages"])
            expect(
                row.invocations[-1].outcome == "completed",
                f"tenants: run {row.thread} ended {row.invocations[-1].outcome}",
            )
            expected = rcs[tenant]["model.primary"]
            expect(
                row.routes() == [expected],
                f"tenants: run {row.thread} was served by {row.routes()}, expected {expected}",
            )
            tool_out[tenant] = " ".join(
                str(m.content)
                for m in result["messages"]
                if isinstance(m, ToolMessage) and m.name == "refund"
            )
            row.outcome = "completed (refund issued)"
        expect(
            "[email]" in tool_out["acme"] and "@" not in tool_out["acme"],
            "tenants: acme requires PII redaction, but its refund receipt was not redacted",
        )
        expect(
            "@" in tool_out["globex"],
            "tenants: globex turns PII redaction off, its refund receipt should show the e-mail",
        )
        self._ok(
            "same graph, different overlays: routes "
            + ", ".join(f"{r.tenant}={r.routes()[0]}" for r in self.rows)
            + "; acme's tool output is PII-redacted, globex's is not"
        )

    def interrupt(self, worker: Worker) -> tuple[Row, str]:
        self._step("A refund waits for human approval")
        row, result = self._ask(
            worker,
            thread="globex-2",
            tenant="globex",
            user="u-9",
            plan="enterprise",
            text="Please refund order G-7731, $1,250 - the shipment arrived damaged.",
        )
        interrupts = result.get("__interrupt__") or []
        expect(
            row.invocations[-1].outcome == "interrupted" and bool(interrupts),
            f"approval: run globex-2 should stop at interrupt(), it ended "
            f"{row.invocations[-1].outcome}",
        )
        self.out.print(f"  interrupt(): {escape(repr(interrupts[0].value))}")
        pinned = worker.graph.get_pinned_config(
            self._config("globex-2", "globex", "u-9", "enterprise")
        )
        expect(pinned is not None, "approval: no RunConfig is pinned in globex-2's checkpoint")
        assert pinned is not None
        expect(
            pinned.config_hash == row.first.pinned.config_hash,
            "approval: the pin in the checkpoint differs from the run's RunConfig",
        )
        self._ok(
            f"run globex-2 is interrupted; its RunConfig (rev {pinned.snapshot_rev}, "
            f"config_hash {short(pinned.config_hash)}) is pinned in {self.checkpoints.name}"
        )
        return row, pinned.config_hash

    def publish_rev2(self, worker: Worker, waiting: Row) -> None:
        self._step("Publish snapshot rev 2 while the run waits")
        ops = self._ops
        doc = yaml.safe_load(self.flags.read_text(encoding="utf-8"))
        doc["tenants"]["globex"]["values"]["model.primary"] = "claude-sonnet"
        doc["values"]["retrieval.index"] = "kb-2026-11"
        res = ops.publish(
            doc,
            author="ml-platform",
            message="Move globex to claude-sonnet; search the November KB index",
            parent_rev=1,
        )
        expect(res.rev == 2, f"rev 2: the publish made rev {res.rev}")
        table = Table(title="flagmw diff 1 2")
        for col in ("path", "rev 1", "rev 2"):
            table.add_column(col)
        for change in ops.diff(1, 2):
            table.add_row(
                escape(change.path), escape(str(change.before)), escape(str(change.after))
            )
        self.out.print(table)
        self._ok(f"published rev {res.rev} by ml-platform; globex-2 is still waiting")

    def resume(self, waiting: Row, pinned_hash: str) -> Worker:
        self._step("Resume on a fresh worker: the pinned config is kept")
        fresh = self._worker()
        self.out.print(
            "  a new worker (its own FlagClient, SqliteSaver connection and wrapped graph) "
            "resumes globex-2 with Command(resume={'approved': True, 'reviewer': 'dana'})"
        )
        config = self._config("globex-2", "globex", "u-9", "enterprise")
        result = self._invoke(
            fresh, waiting, Command(resume={"approved": True, "reviewer": "dana"}), config
        )
        resumed = waiting.last
        head = self._ops.snapshot_rev
        expect(
            waiting.invocations[-1].outcome == "completed",
            f"resume: globex-2 ended {waiting.invocations[-1].outcome} after the approval",
        )
        expect(
            resumed.resumed and resumed.pin_source == "checkpoint",
            f"resume: globex-2 was not rehydrated from its checkpoint ({resumed.pin_source})",
        )
        expect(
            resumed.pinned.config_hash == pinned_hash and resumed.pinned.snapshot_rev == 1,
            f"resume: globex-2 resumed with rev {resumed.pinned.snapshot_rev} / "
            f"{short(resumed.pinned.config_hash)}, not its pinned rev 1 / {short(pinned_hash)}",
        )
        waiting.outcome = "interrupted -> resumed (approved)"
        self._show_run(waiting, result["messages"])

        row, result = self._ask(
            fresh,
            thread="globex-3",
            tenant="globex",
            user="u-9",
            plan="enterprise",
            text="Please refund order G-7740, $120, item never arrived.",
        )
        row.outcome = "completed (refund issued)"
        self._show_run(row, result["messages"])
        new = row.first
        expect(
            new.pinned.snapshot_rev == 2 and new.pinned.config_hash != pinned_hash,
            f"resume: a new globex run got rev {new.pinned.snapshot_rev}, expected rev 2",
        )
        table = Table(title="Pinned vs head")
        for col in ("run", "pinned rev", "head rev", "config_hash", "model", "retrieval.index"):
            table.add_column(col)
        for label, r, st in (
            ("globex-2 (resumed)", waiting, resumed),
            ("globex-3 (new run)", row, new),
        ):
            table.add_row(
                label,
                str(st.pinned.snapshot_rev),
                str(head),
                short(st.pinned.config_hash),
                ", ".join(r.routes()) if r is row else ", ".join(routes(r.last)),
                str(st.rc["retrieval.index"]),
            )
        self.out.print(table)
        expect(
            routes(resumed) == ["gpt-4o"] and row.routes() == ["claude-sonnet"],
            f"resume: routes were {routes(resumed)} (resumed) and {row.routes()} (new)",
        )
        self._ok(
            f"resumed run kept pinned rev 1 while head is rev {head}: same config_hash "
            f"{short(pinned_hash)}, still served by gpt-4o; the new run got rev 2 "
            "(claude-sonnet)"
        )
        return fresh
