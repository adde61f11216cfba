"""Notifications: every kill, override, renewal, end, publish and rollback — made in the
console, with the CLI or from Python — delivered to webhooks as a Slack-compatible
incoming-webhook message or a PagerDuty Events API v2 event.

A :class:`Notifier` watches the store the way the event stream does (the change token
every 0.2 s, the state when it moved or once a second) on its own thread, and delivers on
another, so an operation never waits for a webhook. A delivery is retried with
exponential backoff (0.5 s, 1 s, 2 s … with jitter; ``attempts`` in all) on a network
error, a 429 or a 5xx; a 4xx other than 429 is not retried. Failures are counted in
``/metrics`` (``flagmw_webhook_failures_total``) and the last one is shown on the
dashboard. Only ``http`` and ``https`` URLs are accepted; nothing from a request body or
a document ever becomes a URL.

PagerDuty: a kill triggers an event whose ``dedup_key`` is ``flagmw:<store>:<id>``, and its
end or expiry resolves it; publishes, rollbacks and overrides are ``info`` events. With
``flagmw serve --rollout-tick``, what the rollout controller does is delivered too
(``rollout.advance``, ``rollout.complete``, ``rollout.rollback`` — an ``error`` event —,
``rollout.pause`` — a ``warning``).
The routing key is read from ``$FLAGMW_PAGERDUTY_ROUTING_KEY`` (a secret: never on the
command line).
"""

from __future__ import annotations

import json
import logging
import queue
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flagmw.console.feed import ChangeFeed
from flagmw.console.state import Console
from flagmw.errors import FlagmwError

__all__ = ["Notifier", "Webhook", "pagerduty_event", "parse_webhook", "slack_message"]

log = logging.getLogger("flagmw.console")


@dataclass(frozen=True, slots=True)
class Webhook:
    """One destination: ``kind`` ``slack`` or ``pagerduty``, its URL, and for PagerDuty
    the routing key."""

    kind: str
    url: str
    routing_key: str = ""


def parse_webhook(spec: str, routing_key: str = "") -> Webhook:
    """``slack=https://…`` or ``pagerduty=https://events.pagerduty.com/v2/enqueue``.

    Raises:
        ValueError: another kind, a URL that is not http(s), PagerDuty without a key.
    """
    kind, sep, url = spec.partition("=")
    if not sep or kind not in ("slack", "pagerduty"):
        raise ValueError(f"webhook {spec!r}: use slack=URL or pagerduty=URL")
    if not url.startswith(("https://", "http://")):
        raise ValueError(f"webhook {kind}: {url!r} is not an http(s) URL")
    if kind == "pagerduty" and not routing_key:
        raise ValueError("a pagerduty webhook needs $FLAGMW_PAGERDUTY_ROUTING_KEY")
    return Webhook(kind, url, routing_key if kind == "pagerduty" else "")


def _summary(name: str, d: dict[str, Any]) -> str:
    if name.startswith("rollout."):
        verb = _ROLLOUT_VERBS.get(d["action"], d["action"])
        return f"flagmw: rollout {d['rollout']} {verb} (share {d['share']:g} %): {d['reason']}"
    if name.startswith("approval."):
        keys = ", ".join(d["keys"])
        if name == "approval.requested":
            return (
                f"flagmw: {d['requested_by']} asks a second admin to approve {d['id']} "
                f"({keys}): {d['message']}"
            )
        verb = name.split(".")[1]
        return f"flagmw: {d['id']} ({keys}) {verb} by {d['decided_by']}"
    if name == "rev":
        verb = "rolled back" if d.get("action") == "rollback" else "published"
        return f"flagmw: rev {d['rev']} {verb} by {d['author']}: {d['message']}"
    what = "KILL" if d.get("kind") == "kill" else "override"
    scope = d.get("scope_label", "")
    if name == "override.created":
        return (
            f"flagmw: {what} {d['key']} = {json.dumps(d['value'])} ({scope}) by "
            f"{d['actor']}: {d['reason']}"
        )
    if name == "override.ended":
        return f"flagmw: {what} {d['key']} ({scope}) ended by {d['ended_by']}: {d['end_reason']}"
    if name == "override.renewed":
        return f"flagmw: {what} {d['key']} ({scope}) renewed, {int(d['seconds_left'])} s left"
    return f"flagmw: {what} {d['key']} ({scope}) expired"


#: how a rollout action reads in a message
_ROLLOUT_VERBS = {
    "advance": "advanced",
    "complete": "completed",
    "rollback": "ROLLED BACK",
    "pause": "paused",
    "conflict": "changed by another controller",
}
#: PagerDuty severity of a rollout action
_ROLLOUT_SEVERITY = {"rollback": "error", "pause": "warning"}


def slack_message(name: str, data: dict[str, Any]) -> dict[str, Any]:
    """A Slack incoming-webhook message (``text`` plus one mrkdwn section)."""
    text = _summary(name, data)
    return {"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]}


def _severity(name: str, data: dict[str, Any], kill: bool) -> str:
    if kill and name == "override.created":
        return "critical"
    if name.startswith("rollout."):
        return _ROLLOUT_SEVERITY.get(str(data.get("action")), "info")
    return "info"


def pagerduty_event(
    name: str, data: dict[str, Any], routing_key: str, store: str
) -> dict[str, Any]:
    """A PagerDuty Events API v2 event: kills trigger (and their end resolves) a
    ``critical`` alert deduplicated by the override id; a rollout rollback triggers an
    ``error``, a rollout pause a ``warning``; everything else is an ``info`` trigger."""
    kill = data.get("kind") == "kill"
    oid = data.get("id")
    if name.startswith("rollout."):
        dedup = f"flagmw:{store}:rollout-{data['rollout']}-{data['action']}-{data['share']:g}"
    elif name.startswith("approval."):
        dedup = f"flagmw:{store}:{data['id']}"
    elif name == "rev":
        dedup = f"flagmw:{store}:rev-{data['rev']}"
    else:
        dedup = f"flagmw:{store}:{oid}"
    action = "resolve" if kill and name in ("override.ended", "override.expired") else "trigger"
    event: dict[str, Any] = {"routing_key": routing_key, "event_action": action, "dedup_key": dedup}
    if action == "trigger":
        event["payload"] = {
            "summary": _summary(name, data)[:1024],
            "source": f"flagmw:{store}",
            "severity": _severity(name, data, kill),
            "component": data.get("key", data.get("rollout", "snapshot")),
            "group": "flagmw",
            "class": name,
            "custom_details": data,
        }
    return event


class Notifier:
    """Watches ``console``'s store and delivers its changes to ``hooks`` (two daemon
    threads, started by :meth:`start`, stopped by :meth:`stop`)."""

    def __init__(
        self,
        console: Console,
        hooks: list[Webhook],
        *,
        attempts: int = 5,
        backoff: float = 0.5,
        timeout: float = 5.0,
        post: Callable[[str, bytes, float], int] | None = None,
    ) -> None:
        self.console = console
        self.hooks = hooks
        self.attempts = attempts
        self.backoff = backoff
        self.timeout = timeout
        self._post = post or _post
        self._queue: queue.Queue[tuple[Webhook, bytes]] = queue.Queue(maxsize=10_000)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for target in (self._watch, self._deliver):
            t = threading.Thread(
                target=target, name=f"flagmw-webhooks-{target.__name__}", daemon=True
            )
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=2)

    def enqueue(self, name: str, data: dict[str, Any]) -> None:
        """Queue ``name`` for every hook (never blocks; a full queue counts as failed)."""
        store = self.console.store.name
        for hook in self.hooks:
            if hook.kind == "slack":
                body = slack_message(name, data)
            else:
                body = pagerduty_event(name, data, hook.routing_key, store)
            try:
                self._queue.put_nowait((hook, json.dumps(body).encode()))
            except queue.Full:
                self._failed(hook, "the delivery queue is full")

    def _failed(self, hook: Webhook, why: str) -> None:
        m = self.console.metrics
        m.webhook_failures += 1
        m.webhook_last_failure = f"{hook.kind}: {why}"
        log.warning("flagmw: webhook %s failed: %s", hook.kind, why)

    def _watch(self) -> None:
        store, clock = self.console.store, self.console.clock
        feed = None
        while feed is None and not self._stop.is_set():
            try:
                feed = ChangeFeed(store, clock())
            except FlagmwError:
                self._stop.wait(1.0)
        if feed is None:
            return
        last_look = time.monotonic()
        while not self._stop.wait(0.2):
            try:
                moved = store.change_token() != feed.token
                if not moved and time.monotonic() - last_look < 1.0:
                    continue
                last_look = time.monotonic()
                found = feed.look(clock())
            except FlagmwError:
                continue
            for name, data in found:
                self.enqueue(name, data)

    def _deliver(self) -> None:
        while not self._stop.is_set():
            try:
                hook, body = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            why = ""
            for attempt in range(self.attempts):
                try:
                    status = self._post(hook.url, body, self.timeout)
                except (OSError, ValueError) as exc:
                    status, why = 0, str(exc)
                if 200 <= status < 300:
                    self.console.metrics.webhook_deliveries += 1
                    break
                if status:
                    why = f"HTTP {status}"
                if 400 <= status < 500 and status != 429:
                    break
                if attempt + 1 < self.attempts and self._stop.wait(
                    self.backoff * 2**attempt * (0.5 + random.random())
                ):
                    return
            else:
                self._failed(hook, f"{why} after {self.attempts} attempts")
                continue
            if not 200 <= status < 300:
                self._failed(hook, why)


def _post(url: str, body: bytes, timeout: float) -> int:
    """POST JSON; the status code (an HTTP error status is returned, not raised)."""
    req = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status: int = resp.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code
