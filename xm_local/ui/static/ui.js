// The dashboard's pages: each reads the JSON API (/api/...) and fills the page; live parts poll it.
// Charts are plotly figures built by the server and drawn with Plotly.newPlot / Plotly.react.
"use strict";

const DATA = JSON.parse(document.getElementById("page-data").textContent);
const main = document.getElementById("main");
let CONFIG = { token_required: false, metrics_available: false, statuses: [] };

// ---- small helpers -------------------------------------------------------------------------------
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function getJSON(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function when(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const d = new Date(seconds * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "";
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min`;
}

function shown(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(6)));
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function statusBadge(status) {
  return el("span", { class: `status status-${status}`, "data-status": status, text: status });
}

function notice(text, isError) {
  const box = document.getElementById("notice");
  box.textContent = text;
  box.className = isError ? "error" : "";
  box.hidden = false;
  clearTimeout(notice.timer);
  notice.timer = setTimeout(() => { box.hidden = true; }, 6000);
}

function setLive(text) {
  document.getElementById("live").textContent = text;
}

function crumbs(...parts) {
  const nav = document.getElementById("crumbs");
  nav.replaceChildren(...parts.flatMap((part, i) => [i ? " / " : "", part]));
}

function queryState(defaults) {
  const params = new URLSearchParams(location.search);
  const state = { ...defaults };
  for (const key of Object.keys(defaults)) if (params.has(key)) state[key] = params.get(key);
  return state;
}

function saveState(state, defaults) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(state)) if (value !== "" && value !== defaults[key]) params.set(key, value);
  const search = params.toString();
  history.replaceState(null, "", search ? `?${search}` : location.pathname);
  return params;
}

// Polls `tick` every `ms` while the tab is visible; `tick` returns false to stop.
function poll(tick, ms) {
  let stopped = false;
  async function loop() {
    if (stopped) return;
    let again = true;
    if (!document.hidden) {
      try { again = (await tick()) !== false; } catch (error) { setLive(`update failed: ${error.message}`); }
    }
    if (again) setTimeout(loop, ms); else stopped = true;
  }
  setTimeout(loop, ms);
  return () => { stopped = true; };
}

// Wraps a loader so that only the answer of the latest call is shown (a poll answered after a newer request,
// e.g. a click on a column, would show stale rows).
function latestOnly(load) {
  let issued = 0;
  return async (...args) => {
    const mine = ++issued;
    return load(() => mine === issued, ...args);
  };
}

function pager(page, pages, total, noun, go) {
  return el("div", { class: "pager" },
    el("button", { id: "prev", disabled: page <= 1, onclick: () => go(page - 1), text: "‹ Previous" }),
    el("span", { id: "page-info", text: `page ${page.toLocaleString()} of ${pages.toLocaleString()} · ${total.toLocaleString()} ${noun}` }),
    el("button", { id: "next", disabled: page >= pages, onclick: () => go(page + 1), text: "Next ›" }));
}

function statusSelect(name, value) {
  return el("select", { name, id: `filter-${name}` },
    el("option", { value: "", text: "any status" }),
    CONFIG.statuses.map((status) => el("option", { value: status, selected: status === value, text: status })));
}

// plotly.js (4 MB, from the installed plotly package) is loaded once a chart is to be drawn, after the tables.
let plotlyLoading = null;
function plotly() {
  if (!plotlyLoading) {
    plotlyLoading = new Promise((resolve, reject) => {
      const script = el("script", { src: "/static/plotly.min.js" });
      script.addEventListener("load", () => resolve(window.Plotly));
      script.addEventListener("error", () => reject(new Error("cannot load /static/plotly.min.js")));
      document.head.append(script);
    });
  }
  return plotlyLoading;
}

// ---- cancelling (the one action that changes anything) ------------------------------------------
async function cancel(url, what) {
  if (!confirm(`Cancel ${what}?`)) return false;
  const headers = { "Content-Type": "application/json" };
  if (CONFIG.token_required) {
    let token = sessionStorage.getItem("xm-ui-token");
    if (!token) token = prompt("Access token of this dashboard (xmanager ui --token):");
    if (!token) return false;
    headers.Authorization = `Bearer ${token}`;
    sessionStorage.setItem("xm-ui-token", token);
  }
  const response = await fetch(url, { method: "POST", headers, body: "{}" });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    if (response.status === 401) sessionStorage.removeItem("xm-ui-token");
    notice(`not cancelled: ${body.error || response.statusText}`, true);
    return false;
  }
  notice(`cancelled ${body.cancelled} work unit(s)`);
  return true;
}

// ---- the experiments page -------------------------------------------------------------------------
function experimentsPage() {
  const defaults = { title: "", tag: "", status: "", since: "", until: "", page: "1" };
  const state = queryState(defaults);
  crumbs(el("span", { text: "Experiments" }));
  const form = el("form", { class: "filters", id: "experiment-filters" },
    el("label", {}, "title", el("input", { name: "title", id: "filter-title", value: state.title, placeholder: "substring or a*b" })),
    el("label", {}, "tag", el("input", { name: "tag", id: "filter-tag", value: state.tag })),
    el("label", {}, "status", statusSelect("status", state.status)),
    el("label", {}, "created from", el("input", { name: "since", id: "filter-since", type: "date", value: state.since })),
    el("label", {}, "to", el("input", { name: "until", id: "filter-until", type: "date", value: state.until })),
    el("button", { type: "submit", id: "apply", text: "Search" }));
  const body = el("div", { id: "experiments" });
  main.replaceChildren(el("h1", { text: "Experiments" }), form, body);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    for (const key of ["title", "tag", "status", "since", "until"]) state[key] = form.elements[key].value;
    state.page = "1";
    load();
  });

  const load = latestOnly(async (current) => {
    const params = saveState(state, defaults);
    const answer = await getJSON(`/api/experiments?${params}`);
    if (!current()) return;
    const rows = answer.experiments.map((e) => el("tr", { "data-id": e.experiment_id },
      el("td", { class: "num" }, el("a", { href: `/experiments/${e.experiment_id}`, text: e.experiment_id })),
      el("td", {}, el("a", { href: `/experiments/${e.experiment_id}`, text: e.title || "(untitled)" })),
      el("td", {}, e.tags.map((tag) => el("span", { class: "tag", text: tag }))),
      el("td", { text: when(e.created_at) }),
      el("td", { class: "num", text: e.work_unit_count.toLocaleString() }),
      el("td", {}, Object.entries(e.status_counts).sort().map(([s, n]) => el("span", {}, statusBadge(s), ` ${n.toLocaleString()} `))),
      el("td", {}, e.active ? el("button", { class: "danger cancel", onclick: async () => {
        if (await cancel(`/api/experiments/${e.experiment_id}/cancel`, `experiment ${e.experiment_id}`)) load();
      }, text: "Cancel" }) : "")));
    body.replaceChildren(
      el("div", { class: "table-wrap" }, el("table", { id: "experiments-table" },
        el("thead", {}, el("tr", {}, ["ID", "Title", "Tags", "Created", "Units", "Statuses", ""].map((h) => el("th", { text: h })))),
        el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", { colspan: 7, class: "muted", text: "no experiments match" }))))),
      pager(answer.page, answer.pages, answer.total, "experiments", (page) => { state.page = String(page); load(); }));
    setLive(`updated ${new Date().toLocaleTimeString()}`);
  });
  load().catch((error) => body.replaceChildren(el("p", { class: "error", text: error.message })));
  poll(load, 5000);
}

// ---- the experiment page --------------------------------------------------------------------------
function experimentPage() {
  const id = DATA.experiment_id;
  const defaults = { status: "", q: "", where: "", sort: "work_unit_id", order: "asc", page: "1", metric: "", x: "" };
  const state = queryState(defaults);
  crumbs(el("a", { href: "/", text: "Experiments" }), el("span", { text: `Experiment ${id}` }));
  const head = el("div", { id: "experiment-head" });
  const form = el("form", { class: "filters", id: "unit-filters" },
    el("label", {}, "status", statusSelect("status", state.status)),
    el("label", {}, "text", el("input", { name: "q", id: "filter-q", value: state.q, placeholder: "in args, results, host, message" })),
    el("label", {}, "where", el("input", { name: "where", id: "filter-where", value: state.where, size: 30, placeholder: "lr>=0.01; results.loss<0.5" })),
    el("button", { type: "submit", id: "apply", text: "Filter" }));
  const table = el("div", { id: "units" });
  const chartControls = el("form", { class: "filters", id: "chart-controls" });
  const charts = el("div", { class: "charts" },
    el("div", { class: "chart", id: "scatter" }), el("div", { class: "chart", id: "parcoords" }));
  main.replaceChildren(head, el("h2", { text: "Work units" }), form, table,
    el("h2", { text: "Args against a metric" }), chartControls, charts);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    for (const key of ["status", "q", "where"]) state[key] = form.elements[key].value;
    state.page = "1";
    loadUnits();
  });
  let active = true;

  async function loadHead() {
    const answer = await getJSON(`/api/experiments/${id}`);
    const e = answer.experiment;
    active = e.active;
    document.title = `${e.title || "Experiment"} (${id}) · xmanager`;
    head.replaceChildren(
      el("h1", {}, `${e.title || "(untitled)"} `, el("span", { class: "muted", text: `#${id}` })),
      el("dl", { class: "facts" },
        el("dt", { text: "created" }), el("dd", { text: `${when(e.created_at)}${e.creator ? ` by ${e.creator}` : ""}` }),
        el("dt", { text: "tags" }), el("dd", {}, e.tags.map((tag) => el("span", { class: "tag", text: tag }))),
        el("dt", { text: "units" }), el("dd", { id: "status-counts" }, `${e.work_unit_count.toLocaleString()}: `,
          Object.entries(e.status_counts).sort().map(([s, n]) => el("span", {}, statusBadge(s), ` ${n.toLocaleString()} `))),
        e.notes ? [el("dt", { text: "notes" }), el("dd", { text: e.notes })] : []),
      e.active ? el("button", { class: "danger", id: "cancel", onclick: async () => {
        if (await cancel(`/api/experiments/${id}/cancel`, `experiment ${id}`)) { loadHead(); loadUnits(); }
      }, text: "Cancel experiment" }) : "");
  }

  function header(label, key, numeric) {
    const sorted = state.sort === key;
    return el("th", { class: `sortable${sorted ? ` sorted-${state.order}` : ""}`, "data-sort": key, title: `sort by ${label}`,
      onclick: () => {
        state.order = sorted && state.order === "asc" ? "desc" : sorted ? "asc" : (numeric ? "desc" : "asc");
        if (!sorted && key === "work_unit_id") state.order = "asc";
        state.sort = key;
        state.page = "1";
        loadUnits();
      }, text: label });
  }

  const loadUnits = latestOnly(async (current) => {
    const params = saveState(state, defaults);
    const query = new URLSearchParams(params);
    query.delete("metric"); query.delete("x");
    const answer = await getJSON(`/api/experiments/${id}/units?${query}`);
    if (!current()) return;
    const fixed = [["WU", "work_unit_id"], ["status", "status"], ["exit", "exit_code"], ["host", "host"],
      ["started", "started_at"], ["ended", "ended_at"], ["duration", "duration"]];
    const heads = [...fixed.map(([label, key]) => header(label, key, key !== "status" && key !== "host")),
      ...answer.args.map((key) => header(key, `args.${key}`, true)),
      ...answer.results.map((key) => header(key, `results.${key}`, true)),
      header("message", "message", false)];
    const groups = el("tr", {}, el("th", { colspan: fixed.length, class: "group" }),
      answer.args.length ? el("th", { colspan: answer.args.length, class: "group", text: "args" }) : null,
      answer.results.length ? el("th", { colspan: answer.results.length, class: "group", text: "results" }) : null,
      el("th", { class: "group" }));
    const rows = answer.units.map((u) => el("tr", { "data-unit": u.work_unit_id },
      el("td", { class: "num" }, el("a", { href: `/experiments/${id}/units/${u.work_unit_id}`, text: u.work_unit_id })),
      el("td", {}, statusBadge(u.status)),
      el("td", { class: "num", text: shown(u.exit_code) }),
      el("td", { text: shown(u.host) }),
      el("td", { text: when(u.started_at) }),
      el("td", { text: when(u.ended_at) }),
      el("td", { class: "num", text: duration(u.duration) }),
      answer.args.map((key) => el("td", { class: "num", "data-key": `args.${key}`, text: shown(u.args[key]) })),
      answer.results.map((key) => el("td", { class: "num", "data-key": `results.${key}`, text: shown(u.results[key]) })),
      el("td", { class: "message", title: u.message || "", text: u.message || "" })));
    table.replaceChildren(
      el("div", { class: "table-wrap" }, el("table", { id: "units-table" },
        el("thead", {}, groups, el("tr", {}, heads)),
        el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", { colspan: heads.length, class: "muted", text: "no work units match" }))))),
      pager(answer.page, answer.pages, answer.total, "work units", (page) => { state.page = String(page); loadUnits(); }));
    setLive(`updated ${new Date().toLocaleTimeString()}`);
  });

  const loadCharts = latestOnly(async (current) => {
    const query = new URLSearchParams();
    if (state.metric) query.set("metric", state.metric);
    if (state.x) query.set("x", state.x);
    const answer = await getJSON(`/api/experiments/${id}/charts?${query}`);
    const Plotly = await plotly();
    if (!current()) return;
    const select = (name, options, value) => el("select", { name, id: `chart-${name}`, onchange: (event) => {
      state[name] = event.target.value; saveState(state, defaults); loadCharts();
    } }, options.map((option) => el("option", { value: option, selected: option === value, text: option })));
    chartControls.replaceChildren(
      el("label", {}, "metric (results)", select("metric", answer.metrics, answer.metric)),
      el("label", {}, "x (args)", select("x", answer.xs, answer.x)));
    for (const [name, figure] of [["scatter", answer.scatter], ["parcoords", answer.parcoords]]) {
      const box = document.getElementById(name);
      if (!figure) {
        box.replaceChildren(el("p", { class: "muted", text: "nothing to draw yet: no unit has reported a numeric result" }));
        continue;
      }
      box.replaceChildren();
      Plotly.newPlot(box, figure.data, figure.layout, { responsive: true, displaylogo: false });
    }
    if (answer.scatter) {
      document.getElementById("scatter").on("plotly_click", (event) => {
        const unit = event.points[0] && event.points[0].customdata;
        if (unit) location.href = `/experiments/${id}/units/${unit}`;
      });
    }
  });

  Promise.all([loadHead(), loadUnits()]).catch((error) => head.replaceChildren(el("p", { class: "error", text: error.message })))
    .then(() => loadCharts()).catch((error) => charts.replaceChildren(el("p", { class: "error", text: error.message })));
  poll(async () => { await loadHead(); await loadUnits(); }, 2000);
  poll(async () => { if (active) await loadCharts(); }, 15000);
}

// ---- the unit page ---------------------------------------------------------------------------------
function unitPage() {
  const id = DATA.experiment_id;
  const wu = DATA.work_unit_id;
  const base = `/api/experiments/${id}/units/${wu}`;
  crumbs(el("a", { href: "/", text: "Experiments" }), el("a", { href: `/experiments/${id}`, text: `Experiment ${id}` }),
    el("span", { text: `Work unit ${wu}` }));
  const head = el("div", { id: "unit-head" });
  const jobsBox = el("div", { id: "jobs" });
  const jobSelect = el("select", { id: "log-job" });
  const stdout = el("pre", { id: "log-stdout" });
  const stderr = el("pre", { id: "log-stderr" });
  const metricsBox = el("div", { class: "chart", id: "metrics" });
  main.replaceChildren(head, el("h2", { text: "Jobs" }), jobsBox,
    el("h2", {}, "Logs ", jobSelect),
    el("div", { class: "logs" }, el("div", {}, el("div", { class: "muted", text: "stdout" }), stdout),
      el("div", {}, el("div", { class: "muted", text: "stderr" }), stderr)),
    el("h2", { text: "Metrics" }), metricsBox);
  let active = true;
  let jobNames = [];
  const offsets = { stdout: null, stderr: null };
  jobSelect.addEventListener("change", () => {
    offsets.stdout = offsets.stderr = null;
    stdout.textContent = stderr.textContent = "";
    followLogs();
  });

  async function loadUnit() {
    const answer = await getJSON(base);
    const u = answer.unit;
    active = u.active;
    document.title = `Unit ${wu} of ${answer.experiment.title || id} · xmanager`;
    const pairs = (value) => Object.keys(value).length
      ? el("table", { class: "kv" }, Object.entries(value).map(([k, v]) => el("tr", {}, el("th", { text: k }), el("td", { text: shown(v) }))))
      : el("span", { class: "muted", text: "none" });
    head.replaceChildren(
      el("h1", {}, `Work unit ${wu} `, statusBadge(u.status)),
      el("dl", { class: "facts" },
        el("dt", { text: "status" }), el("dd", { id: "unit-status", "data-status": u.status, text: u.status + (u.message ? `: ${u.message}` : "") }),
        el("dt", { text: "exit code" }), el("dd", { id: "unit-exit", text: shown(u.exit_code) }),
        el("dt", { text: "host" }), el("dd", { text: shown(u.host) }),
        el("dt", { text: "created" }), el("dd", { text: when(u.created_at) }),
        el("dt", { text: "started" }), el("dd", { text: when(u.started_at) }),
        el("dt", { text: "ended" }), el("dd", { text: when(u.ended_at) }),
        el("dt", { text: "duration" }), el("dd", { text: duration(u.duration) }),
        el("dt", { text: "args" }), el("dd", { id: "unit-args" }, pairs(u.args)),
        el("dt", { text: "results" }), el("dd", { id: "unit-results" }, pairs(u.results))),
      u.active ? el("button", { class: "danger", id: "cancel", onclick: async () => {
        if (await cancel(`${base}/cancel`, `work unit ${wu}`)) loadUnit();
      }, text: "Cancel work unit" }) : "");
    jobsBox.replaceChildren(answer.jobs.length ? el("table", { id: "jobs-table" },
      el("thead", {}, el("tr", {}, ["job", "executor", "status", "exit", "runs as", "console"].map((h) => el("th", { text: h })))),
      el("tbody", {}, answer.jobs.map((job) => el("tr", {},
        el("td", { text: job.job_name }), el("td", { text: job.executor }), el("td", {}, statusBadge(job.status)),
        el("td", { class: "num", text: shown(job.exit_code) }), el("td", { class: "executor-where", text: job.where || "" }),
        el("td", {}, job.console_url ? el("a", { class: "console-link", href: job.console_url, target: "_blank", rel: "noopener", text: "open in console" }) : "")))))
      : el("p", { class: "muted", text: "no jobs launched yet" }));
    const names = answer.jobs.map((job) => job.job_name);
    if (names.join("\n") !== jobNames.join("\n")) {
      jobNames = names;
      const current = jobSelect.value;
      jobSelect.replaceChildren(...names.map((name) => el("option", { value: name, selected: name === current, text: name })));
      jobSelect.hidden = names.length < 2;
    }
  }

  async function followStream(stream, pre) {
    const query = new URLSearchParams({ stream });
    if (jobSelect.value) query.set("job", jobSelect.value);
    if (offsets[stream] !== null) query.set("offset", offsets[stream]);
    const answer = await getJSON(`${base}/logs?${query}`);
    if (answer.error) { pre.textContent = answer.error; return answer; }
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    if (answer.reset) pre.textContent = answer.text;
    else if (answer.text) pre.append(answer.text);
    if (!answer.exists && !pre.textContent) pre.textContent = "";
    offsets[stream] = answer.offset;
    if (atBottom) pre.scrollTop = pre.scrollHeight;
    return answer;
  }

  async function followLogs() {
    const [out, err] = await Promise.all([followStream("stdout", stdout), followStream("stderr", stderr)]);
    // Keep going while the job runs or a file still has unread bytes.
    return out.active || err.active || out.offset < out.size || err.offset < err.size;
  }

  let plotted = false;
  async function loadMetrics() {
    const answer = await getJSON(`${base}/metrics`);
    if (!answer.available) {
      metricsBox.replaceChildren(el("p", { class: "muted", id: "metrics-unavailable", text: answer.reason }));
      return false;
    }
    if (!answer.figure) {
      if (!plotted) metricsBox.replaceChildren(el("p", { class: "muted", text: "no metrics reported yet (xm.report(step=..., name=value))" }));
      return active;
    }
    const Plotly = await plotly();
    metricsBox.dataset.points = answer.points;
    if (!plotted) { metricsBox.replaceChildren(); Plotly.newPlot(metricsBox, answer.figure.data, answer.figure.layout, { responsive: true, displaylogo: false }); plotted = true; }
    else Plotly.react(metricsBox, answer.figure.data, answer.figure.layout);
    return active;
  }

  loadUnit().then(() => followLogs())
    .catch((error) => head.replaceChildren(el("p", { class: "error", text: error.message })));
  loadMetrics().catch((error) => metricsBox.replaceChildren(el("p", { class: "error", text: error.message })));
  poll(async () => { await loadUnit(); setLive(`updated ${new Date().toLocaleTimeString()}`); }, 2000);
  poll(followLogs, 1000);
  poll(async () => { await loadMetrics(); return true; }, 2000);
}

// ---- start ---------------------------------------------------------------------------------------
(async () => {
  try { CONFIG = await getJSON("/api/config"); } catch (error) { /* defaults */ }
  ({ experiments: experimentsPage, experiment: experimentPage, unit: unitPage })[DATA.page]();
})();
