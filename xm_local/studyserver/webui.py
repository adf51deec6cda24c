"""The study server's web UI at ``/``: one self-contained page to manage and monitor participants.

The page has no external assets (inline CSS and plain JavaScript with ``fetch``) and only talks to the
``/api/...`` endpoints of the same server:

* reads with GET: ``/api/participants`` (the table, polled every few seconds) and ``/api/config/<pid>``;
* every change with POST or PUT: ``move-to-next``, ``move-to-block``, ``move-all-to-block``,
  ``reset-participant`` (POST), ``new-participant``, ``add-participant`` (PUT).

When the server has an access token, the page sends ``Authorization: Bearer <token>`` with the token
typed into its password field (kept in ``sessionStorage``, never in the page or a cookie).

Differences from experiment-server 0.3.9's UI (Bootstrap + htmx from a CDN, ``/web/<action>`` HTML
fragments): no network access needed, state changes are never GETs, all participants are listed at
once with their block names, and the in-memory config editor (``update-config``) is not offered (the
config file is the source of truth and is reloaded when edited).
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

from starlette.responses import Response
from xmanager.xm_local.studyserver.responses import HTML, answer

if TYPE_CHECKING:
    from xmanager.xm_local.studyserver.api import StudyServer

__all__ = ["index_page"]

_CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": _CSP,
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Study server</title>
<link rel="icon" href="data:,">
<style>
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; background: #fafafa; }
h1 { font-size: 1.3rem; margin: 0 0 .2rem; }
h2 { font-size: 1.05rem; margin: 1.2rem 0 .4rem; }
.sub { color: #666; font-size: .85rem; margin-bottom: 1rem; word-break: break-all; }
.layout { display: flex; flex-wrap: wrap; gap: 1.5rem; align-items: flex-start; }
.panel { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: .8rem 1rem; }
table { border-collapse: collapse; min-width: 26rem; }
th, td { border-bottom: 1px solid #eee; padding: .3rem .6rem; text-align: left; }
th { background: #f0f0f0; font-weight: 600; }
tbody tr { cursor: pointer; }
tbody tr:hover { background: #f4f8ff; }
tbody tr.selected { background: #dbe8ff; }
.yes { color: #176b2c; font-weight: 600; }
.no { color: #888; }
.row { display: flex; gap: .4rem; align-items: center; margin: .35rem 0; flex-wrap: wrap; }
label { font-size: .9rem; }
input[type=number] { width: 6rem; }
input, button { font: inherit; padding: .2rem .45rem; }
button { cursor: pointer; border: 1px solid #888; border-radius: 4px; background: #f6f6f6; }
button:hover { background: #e8e8e8; }
button.danger { border-color: #b33; color: #b33; }
#message { min-height: 1.3rem; margin: .6rem 0; font-size: .9rem; }
#message.error { color: #b00020; }
#message.ok { color: #176b2c; }
pre { background: #f4f4f4; border: 1px solid #ddd; padding: .6rem; max-width: 40rem; max-height: 30rem;
      overflow: auto; font-size: .85rem; }
.hidden { display: none; }
</style>
</head>
<body>
<h1>Study server</h1>
<div class="sub">Config file: <span id="config-path"></span> &middot; last update: <span id="updated">never</span></div>
<div class="%(auth_class)s" id="auth">
  <label for="token">Access token</label>
  <input type="password" id="token" autocomplete="off" size="30">
  <button type="button" id="save-token">Use token</button>
  <button type="button" id="clear-token">Forget</button>
  <span id="token-state" class="no"></span>
</div>
<div id="message" role="status" aria-live="polite"></div>
<div class="layout">
  <div class="panel">
    <h2>Participants</h2>
    <table id="participants">
      <thead><tr><th>Participant</th><th>Block id</th><th>Blocks</th><th>Block name</th><th>Active</th></tr></thead>
      <tbody></tbody>
    </table>
  </div>
  <div class="panel">
    <h2>Participant</h2>
    <div class="row">
      <label for="pid">Participant id</label>
      <input type="number" id="pid" min="1" step="1">
    </div>
    <div class="row"><button type="button" id="move-to-next">Move to next</button></div>
    <div class="row">
      <label for="block-id">Block</label>
      <input type="number" id="block-id" min="0" step="1" value="0">
      <button type="button" id="move-to-block">Move to block</button>
      <button type="button" id="move-all-to-block">Move all to block</button>
    </div>
    <div class="row">
      <button type="button" id="view-config">View config</button>
      <button type="button" id="reset-participant" class="danger">Reset participant</button>
    </div>
    <h2>New participants</h2>
    <div class="row"><button type="button" id="new-participant">New participant</button></div>
    <div class="row">
      <label for="add-pid">Participant id</label>
      <input type="number" id="add-pid" min="1" step="1">
      <button type="button" id="add-participant">Add participant</button>
    </div>
  </div>
  <div class="panel">
    <h2>Config of <span id="config-title">&hellip;</span></h2>
    <pre id="config">Choose a participant and click &ldquo;View config&rdquo;.</pre>
  </div>
</div>
<script>
"use strict";
(function () {
  const POLL_MS = %(poll_ms)d;
  const TOKEN_KEY = "studyserver.token";
  const $ = (id) => document.getElementById(id);
  let selected = null;
  let participants = [];

  function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }

  function showTokenState() {
    $("token-state").textContent = token() ? "token set" : "no token";
  }

  function say(text, isError) {
    const el = $("message");
    el.textContent = text;
    el.className = isError ? "error" : "ok";
  }

  async function api(method, path) {
    const headers = {};
    const t = token();
    if (t) headers["Authorization"] = "Bearer " + t;
    let response;
    try {
      response = await fetch("/api/" + path, {method: method, headers: headers, cache: "no-store"});
    } catch (err) {
      throw new Error("server unreachable: " + err.message);
    }
    const text = await response.text();
    if (response.status === 401) throw new Error("unauthorized: enter the server's access token above");
    if (!response.ok) throw new Error(method + " /api/" + path + ": " + response.status + " " + text);
    return text;
  }

  function intValue(id, what, min) {
    const raw = $(id).value.trim();
    if (!/^[0-9]+$/.test(raw) || Number(raw) < min) throw new Error(what + " must be an integer >= " + min);
    return Number(raw);
  }

  function selectParticipant(pid) {
    selected = pid;
    $("pid").value = String(pid);
    renderTable();
  }

  function renderTable() {
    const body = $("participants").tBodies[0];
    const rows = [];
    for (const p of participants) {
      const tr = document.createElement("tr");
      tr.dataset.pid = String(p.participant_index);
      if (p.participant_index === selected) tr.className = "selected";
      const cells = [p.participant_index, p.block_id, p.blocks_count, p.block_name, p.active ? "yes" : "no"];
      const names = ["pid", "block-id", "blocks-count", "block-name", "active"];
      cells.forEach(function (value, i) {
        const td = document.createElement("td");
        td.textContent = String(value);
        td.dataset.col = names[i];
        if (i === 4) td.className = p.active ? "yes" : "no";
        tr.appendChild(td);
      });
      tr.addEventListener("click", function () { selectParticipant(p.participant_index); });
      rows.push(tr);
    }
    body.replaceChildren.apply(body, rows);
  }

  async function refresh() {
    try {
      participants = JSON.parse(await api("GET", "participants"));
      if (selected === null && participants.length) {
        selected = participants[0].participant_index;
        $("pid").value = String(selected);
      }
      renderTable();
      $("updated").textContent = new Date().toLocaleTimeString();
    } catch (err) {
      say(err.message, true);
    }
  }

  function currentPid() {
    const pid = intValue("pid", "participant id", 1);
    selected = pid;
    return pid;
  }

  async function act(fn) {
    try {
      say(await fn(), false);
    } catch (err) {
      say(err.message, true);
    }
    await refresh();
  }

  async function viewConfig(pid) {
    $("config-title").textContent = "participant " + pid;
    try {
      const text = await api("GET", "config/" + pid);
      $("config").textContent = JSON.stringify(JSON.parse(text), null, 2);
      return "config of participant " + pid;
    } catch (err) {
      $("config").textContent = "(no config shown: see the message above)";
      throw err;
    }
  }

  $("move-to-next").addEventListener("click", () => act(async function () {
    const pid = currentPid();
    const data = JSON.parse(await api("POST", "move-to-next/" + pid));
    return "participant " + pid + " moved to " + data.name;
  }));
  $("move-to-block").addEventListener("click", () => act(async function () {
    const pid = currentPid();
    const bid = intValue("block-id", "block", 0);
    await api("POST", "move-to-block/" + pid + "/" + bid);
    return "participant " + pid + " moved to block " + bid;
  }));
  $("move-all-to-block").addEventListener("click", () => act(async function () {
    const bid = intValue("block-id", "block", 0);
    if (!window.confirm("Move ALL participants to block " + bid + "?")) return "cancelled";
    await api("POST", "move-all-to-block/" + bid);
    return "all participants moved to block " + bid;
  }));
  $("reset-participant").addEventListener("click", () => act(async function () {
    const pid = currentPid();
    if (!window.confirm("Reset participant " + pid + " to before its first block?")) return "cancelled";
    await api("POST", "reset-participant/" + pid);
    return "participant " + pid + " reset";
  }));
  $("new-participant").addEventListener("click", () => act(async function () {
    const pid = Number(await api("PUT", "new-participant"));
    selectParticipant(pid);
    return "participant " + pid + " created";
  }));
  $("add-participant").addEventListener("click", () => act(async function () {
    const pid = intValue("add-pid", "participant id", 1);
    await api("PUT", "add-participant/" + pid);
    selectParticipant(pid);
    return "participant " + pid + " added";
  }));
  $("view-config").addEventListener("click", () => act(() => viewConfig(currentPid())));
  $("save-token").addEventListener("click", function () {
    sessionStorage.setItem(TOKEN_KEY, $("token").value);
    $("token").value = "";
    showTokenState();
    say("token saved for this browser tab", false);
  });
  $("clear-token").addEventListener("click", function () {
    sessionStorage.removeItem(TOKEN_KEY);
    showTokenState();
    say("token forgotten", false);
  });

  $("config-path").textContent = %(config_path)s;
  showTokenState();
  refresh();
  setInterval(refresh, POLL_MS);
})();
</script>
</body>
</html>
"""


def _js_string(text: str) -> str:
    """A JavaScript string literal safe inside an inline ``<script>``."""
    return json.dumps(text).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def index_page(server: StudyServer, poll_ms: int = 3000) -> Response:
    """The web UI (``GET /``) of ``server`` (a :class:`StudyServer`)."""
    page = _PAGE % {
        "auth_class": "row panel" if server.token is not None else "row panel hidden",
        "poll_ms": poll_ms,
        # The file's name only: its folders are nobody's business off this machine.
        "config_path": _js_string(os.path.basename(server.state.config_path)),
    }
    return answer(200, page, HTML, _HEADERS)
