// flagmw console: live updates over the event stream, countdowns. No dependencies.
// Every action also works without this file (plain form posts).
(function () {
  "use strict";
  function fmtLeft(s) {
    s = Math.max(0, Math.floor(s));
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    var mm = (m < 10 ? "0" : "") + m, ss = (sec < 10 ? "0" : "") + sec;
    return h ? h + "h " + mm + "m " + ss + "s" : m + "m " + ss + "s";
  }
  function tick() {
    var now = Date.now() / 1000;
    document.querySelectorAll("[data-expires]").forEach(function (el) {
      var left = parseFloat(el.getAttribute("data-expires")) - now;
      el.textContent = left > 0 ? fmtLeft(left) : "expired";
    });
  }
  function toast(text) {
    var box = document.getElementById("toast");
    if (!box) return;
    var p = document.createElement("p");
    p.textContent = text;
    box.appendChild(p);
    setTimeout(function () { p.remove(); }, 6000);
  }
  var busy = false, again = false;
  function refresh() {
    var live = document.getElementById("live");
    if (!live) return;
    var active = document.activeElement;
    if (active && live.contains(active) && /INPUT|SELECT|TEXTAREA/.test(active.tagName) && active.value) {
      again = true; return;  // do not wipe what someone is typing
    }
    if (document.querySelector("#live details[open]")) { again = true; return; }
    if (busy) { again = true; return; }
    busy = true;
    fetch(location.href, { headers: { "X-Flagmw-Partial": "1" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html !== null) { live.innerHTML = html; tick(); document.body.dataset.refreshed = String(Date.now()); }
      })
      .finally(function () { busy = false; if (again) { again = false; setTimeout(refresh, 300); } });
  }
  function describe(name, d) {
    if (name === "rev") return "rev " + d.rev + " published by " + d.author + ": " + d.message;
    if (name === "override.created") return (d.kind === "kill" ? "KILL " : "override ") + d.key + " (" + d.scope_label + ") by " + d.actor + ": " + d.reason;
    if (name === "override.ended") return "ended " + d.id + " " + d.key + " by " + d.ended_by;
    if (name === "override.expired") return "expired " + d.id + " " + d.key;
    if (name === "override.renewed") return "renewed " + d.id + " " + d.key;
    return name;
  }
  function connect() {
    if (!window.EventSource || !document.getElementById("live-status")) return;
    var status = document.getElementById("live-status");
    var es = new EventSource("/api/v1/events");
    es.addEventListener("hello", function () { status.className = "live-on"; document.body.dataset.live = "1"; });
    ["rev", "override.created", "override.ended", "override.expired", "override.renewed"].forEach(function (name) {
      es.addEventListener(name, function (ev) {
        try { toast(describe(name, JSON.parse(ev.data))); } catch (e) { /* ignore */ }
        refresh();
      });
    });
    es.onerror = function () { status.className = "live-off"; };
  }
  document.addEventListener("DOMContentLoaded", function () { tick(); setInterval(tick, 1000); connect(); });
})();
