"""Shadow runs: a sampled share of real runs also runs a candidate version on the same
input, in the background (issue 12 §4).

:func:`shadow` wraps a graph made by ``flagmw.wrap``: ``invoke`` runs the primary run as
usual and returns its result; when the run's unit falls in the shadow share (the same
sticky bucketing as rollouts), a background worker runs the same graph on the same input
with the candidate version pinned, on its own thread id (``shadow:<thread>:<uuid>``: it
never writes to the user's checkpoint thread), and its output is never returned to
anyone. In the shadow run:

* every ``@gated(..., side_effects=True)`` tool answers ``[dry run] … was not executed``
  instead of running (a ``tool_dry_run`` run event);
* its outcome is recorded like any run, with ``arm`` = ``shadow``;
* then a comparison record (``kind: shadow``): same final answer, the two tool
  trajectories, both latencies and costs — summarised by ``flagmw rollout status``.

A shadow run that fails, is slow or cannot be queued never affects the primary run:
the work is queued (bounded: when ``max_pending`` shadows wait, new ones are skipped and
counted) and every error is swallowed and counted.

**Following a rollout** (its ``shadow`` stage): ``shadow(graph, client=…, agent=…,
recorder=…, rollouts=attach(client))`` names no version. The runner reads the agent's
rollout off the :class:`~flagmw.rollout.runtime.RolloutRuntime` (refreshed in the
background; never read from the store on the run's path) and shadows only while that
rollout is running in its shadow stage: the candidate, ``shadow_share`` percent of the
rollout's units (salt ``shadow:<rollout>``), the shadow's outcome recorded at stage 0
with ``arm: shadow`` so the controller judges it. A killed candidate is not shadowed.

The graph may be one made by ``flagmw.wrap`` or a ``create_agent`` agent with
:class:`~flagmw.integrations.langchain.FlagmwMiddleware` (and an ``OutcomeMiddleware``
for the shadow's outcome): the shadow's version, arm and dry-run mark travel in
``config["configurable"]``, which both turn into the run's pinned context.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, NamedTuple

from flagmw.client.client import FlagClient
from flagmw.core.bucketing import UNIT_ATTRIBUTES, bucket, percent_to_bps
from flagmw.core.versions import ROLLOUT_ATTR, STAGE_ATTR, VERSION_ATTR, version_ref
from flagmw.langgraph.tool_gate import SHADOW_ATTR
from flagmw.rollout.outcomes import OutcomeRecorder
from flagmw.rollout.runtime import ARM_ATTR
from flagmw.rollout.stages import SHADOW

if TYPE_CHECKING:  # pragma: no cover
    from flagmw.rollout.runtime import RolloutRuntime

__all__ = ["ShadowRunner", "shadow", "trajectory"]

log = logging.getLogger("flagmw")


def trajectory(output: Any, skip: int = 0) -> tuple[list[str], str | None]:
    """``(tool names called, final answer text)`` of a graph's output with a
    ``messages`` channel (LangChain messages), after its first ``skip`` messages (the
    history both runs started from); ``([], None)`` otherwise."""
    messages = output.get("messages") if isinstance(output, Mapping) else None
    if not isinstance(messages, list):
        return [], None
    tools: list[str] = []
    answer: str | None = None
    for m in messages[skip:]:
        for call in getattr(m, "tool_calls", None) or ():
            tools.append(str(call.get("name")))
        if getattr(m, "type", None) == "ai" and isinstance(getattr(m, "content", None), str):
            answer = m.content
    return tools, answer


class Target(NamedTuple):
    """What a sampled run is shadowed with: the candidate ``version``, the ``rollout``
    name (the comparison's and the salt's), the ``stage`` recorded (None outside a
    rollout's shadow stage), the ``share`` (percent) and ``unit`` sampled."""

    version: str
    rollout: str
    stage: float | None
    share: float
    unit: str


class ShadowRunner:
    """Runs shadows of a graph's runs (build with :func:`shadow`).

    Attributes:
        started, skipped, failed, compared: counters.
    """

    def __init__(
        self,
        graph: Any,
        *,
        client: FlagClient,
        agent: str,
        recorder: OutcomeRecorder,
        version: str | None = None,
        share: float = 0.0,
        unit: str = "thread",
        rollout: str | None = None,
        rollouts: RolloutRuntime | None = None,
        max_pending: int = 8,
        workers: int = 1,
    ) -> None:
        if unit not in UNIT_ATTRIBUTES:
            raise ValueError(f"unit must be one of {', '.join(UNIT_ATTRIBUTES)}: {unit!r}")
        if (version is None) == (rollouts is None):
            raise ValueError("shadow(...) needs a version (and share) or rollouts=, not both")
        if version is not None:
            v = recorder.store.get_version(agent, version)  # the version must be published
            client.versions.add(v.ref, v.values, v.content_hash)
        self.graph = graph
        self.agent = agent
        self.version = version
        self.share = share
        self.recorder = recorder
        self.unit = unit
        self.rollouts = rollouts
        self.rollout = rollout or f"shadow-{agent}-{version}"
        self.max_pending = max_pending
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="flagmw-shadow")
        self._pending = 0
        self._lock = threading.Lock()
        self.started = self.skipped = self.failed = self.compared = 0

    def target(self) -> Target | None:
        """What a sampled run is shadowed with now; None when nothing is shadowed (a
        followed rollout that is not running in its shadow stage, or whose candidate
        is killed)."""
        if self.rollouts is None:
            assert self.version is not None
            return Target(self.version, self.rollout, None, self.share, self.unit)
        r = self.rollouts.rollout_of(self.agent)
        if r is None or r.status != "running" or not r.in_shadow:
            return None
        if self.rollouts.killed(version_ref(r.agent, r.candidate), None):
            return None
        return Target(r.candidate, r.name, SHADOW, r.shadow_share, r.unit)

    def sampled(self, config: Mapping[str, Any], target: Target | None = None) -> bool:
        """True when the run of ``config`` falls in the shadow share (of ``target``,
        default :meth:`target`)."""
        t = target if target is not None else self.target()
        if t is None or t.share <= 0:
            return False
        conf = config.get("configurable") or {}
        value = conf.get(UNIT_ATTRIBUTES[t.unit])
        if value is None and t.unit == "run":
            value = config.get("run_id")
        if value is None:
            return False
        rollouts = self.rollouts
        ref = version_ref(self.agent, t.version)
        if rollouts is not None and t.unit == "tenant" and rollouts.killed(ref, str(value)):
            return False
        return t.share >= 100 or bucket(f"shadow:{t.rollout}", str(value)) < percent_to_bps(t.share)

    def invoke(self, input: Any, config: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
        """The primary run's result; a shadow is queued when the run is sampled."""
        config = dict(config or {})
        t0 = time.monotonic()
        out = self.graph.invoke(input, config, **kwargs)
        self._maybe(input, config, out, (time.monotonic() - t0) * 1000.0)
        return out

    async def ainvoke(
        self, input: Any, config: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> Any:
        """Async :meth:`invoke` (the shadow still runs on the background worker)."""
        config = dict(config or {})
        t0 = time.monotonic()
        out = await self.graph.ainvoke(input, config, **kwargs)
        self._maybe(input, config, out, (time.monotonic() - t0) * 1000.0)
        return out

    def offer(
        self, input: Any, config: Mapping[str, Any], primary: Any, latency_ms: float, skip: int = 0
    ) -> None:
        """Queue a shadow of a primary run that returned ``primary`` in ``latency_ms``
        from ``input`` with ``config``, when it is sampled; ``skip``: messages of
        ``input`` both runs start from (left out of the comparison). Never raises."""
        self._maybe(input, config, primary, latency_ms, skip)

    def _maybe(
        self, input: Any, config: Mapping[str, Any], out: Any, latency: float, skip: int = 0
    ) -> None:
        try:
            config = dict(config)
            t = self.target()
            if self.graph is None or input is None or t is None or not self.sampled(config, t):
                return
            with self._lock:
                if self._pending >= self.max_pending:
                    self.skipped += 1
                    return
                self._pending += 1
            try:
                self._pool.submit(self._run, t, input, config, out, latency, skip)
            except BaseException:
                with self._lock:
                    self._pending -= 1
                raise
        except Exception:  # nothing about a shadow may reach the primary run
            self.failed += 1

    def _run(
        self,
        t: Target,
        input: Any,
        config: dict[str, Any],
        primary: Any,
        latency: float,
        skip: int = 0,
    ) -> None:
        try:
            self.started += 1
            conf = dict(config.get("configurable") or {})
            thread = conf.get("thread_id")
            conf["thread_id"] = f"shadow:{thread}:{uuid.uuid4().hex[:12]}"
            conf[VERSION_ATTR] = version_ref(self.agent, t.version)
            conf[ROLLOUT_ATTR] = t.rollout
            conf[ARM_ATTR] = "shadow"
            conf[SHADOW_ATTR] = True
            if t.stage is not None:
                conf[STAGE_ATTR] = t.stage
            t0 = time.monotonic()
            error: str | None = None
            out: Any = None
            try:
                out = self.graph.invoke(input, {"configurable": conf})
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"[:300]
            shadow_latency = (time.monotonic() - t0) * 1000.0
            p_tools, p_answer = trajectory(primary, skip)
            s_tools, s_answer = trajectory(out, skip)
            self.recorder.add(
                {
                    "kind": "shadow",
                    "at": self.recorder.clock(),
                    "agent": self.agent,
                    "version": t.version,
                    "rollout": t.rollout,
                    "stage": t.stage,
                    "thread_id": thread,
                    "shadow_thread_id": conf["thread_id"],
                    "error": error,
                    "same_answer": error is None and p_answer == s_answer,
                    "same_tools": error is None and p_tools == s_tools,
                    "primary_tools": p_tools,
                    "shadow_tools": s_tools,
                    "primary_latency_ms": round(latency, 3),
                    "shadow_latency_ms": round(shadow_latency, 3),
                }
            )
            self.compared += 1
        except Exception:
            self.failed += 1
            log.debug("flagmw: a shadow run failed", exc_info=True)
        finally:
            with self._lock:
                self._pending -= 1

    def close(self, wait: bool = True) -> None:
        """Stop taking shadows; with ``wait``, let the queued ones finish."""
        self._pool.shutdown(wait=wait, cancel_futures=not wait)


def shadow(
    graph: Any,
    *,
    client: FlagClient,
    agent: str,
    recorder: OutcomeRecorder,
    version: str | None = None,
    share: float = 0.0,
    unit: str = "thread",
    rollout: str | None = None,
    rollouts: RolloutRuntime | None = None,
    max_pending: int = 8,
) -> ShadowRunner:
    """Shadow ``share`` percent of ``graph``'s runs (by ``unit``) with ``agent``
    ``version``, or — with ``rollouts`` (:func:`flagmw.rollout.runtime.attach` on
    ``client``) and no version — the candidate of the agent's rollout while it is in
    its shadow stage (see the module docs). ``graph`` is a graph made by ``flagmw.wrap``
    on ``client``, or a ``create_agent`` agent with ``FlagmwMiddleware(client, …)``; a
    fixed version is loaded into the client's catalog from the recorder's store (a
    followed rollout's versions are loaded by the runtime).

    Raises:
        ValueError: an unknown unit; neither or both of ``version`` and ``rollouts``.
        NotFoundError: the version was never published.
    """
    return ShadowRunner(
        graph,
        client=client,
        agent=agent,
        version=version,
        share=share,
        recorder=recorder,
        unit=unit,
        rollout=rollout,
        rollouts=rollouts,
        max_pending=max_pending,
    )
