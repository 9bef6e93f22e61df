// The musketeer dashboard: one page, views chosen by the URL fragment, data from the JSON API,
// refreshed by polling. No framework and nothing loaded from elsewhere.
"use strict";

const TOKEN_KEY = "musketeer.token";
const POLL_MS = 2000;
const view = document.getElementById("view");
const state = { sort: { key: "name", dir: 1 }, busy: false, project: null, hostNames: {} };

// ---- helpers ---------------------------------------------------------------------------------

function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) => ({
    "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;",
  })[c]);
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
  }
}

async function api(path) {
  const headers = { Accept: "application/json" };
  if (token()) headers.Authorization = `Bearer ${token()}`;
  const response = await fetch(path, { headers, cache: "no-store" });
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

function num(n) {
  return Number(n || 0).toLocaleString("en-US");
}

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB"];
  let value = Number(n || 0);
  let i = 0;
  while (value >= 1024 && i < units.length - 1) { value /= 1024; i += 1; }
  return `${i === 0 ? value : value.toFixed(1)} ${units[i]}`;
}

function ago(ms, now) {
  if (!ms) return "never";
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

function when(ms) {
  return ms ? new Date(ms).toLocaleString() : "–";
}

function duration(minutes) {
  if (!isFinite(minutes)) return "–";
  if (minutes < 1) return `${Math.max(1, Math.round(minutes * 60))} s`;
  if (minutes < 120) return `${Math.round(minutes)} min`;
  return `${(minutes / 60).toFixed(1)} h`;
}

function badge(text, kind) {
  return `<span class="badge ${esc(kind || text)}">${esc(text)}</span>`;
}

function empty(title, text) {
  return `<div class="empty"><h2>${esc(title)}</h2><p>${text}</p></div>`;
}

function needsToken(error, what) {
  if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
    return `<div class="empty"><h2>${esc(what)} need a token</h2>
      <p>${esc(error.message)}</p>
      <p><button type="button" data-action="token">Enter a token</button></p></div>`;
  }
  return null;
}

function card(label, value, sub, id) {
  return `<div class="card"${id ? ` id="${esc(id)}"` : ""}><div class="label">${esc(label)}</div>
    <div class="value">${value}</div>${sub ? `<div class="sub">${sub}</div>` : ""}</div>`;
}

function table(columns, rows, options = {}) {
  const head = columns.map((c) => {
    if (!options.sortable) return `<th>${esc(c.label)}</th>`;
    const active = state.sort.key === c.key;
    const arrow = active ? (state.sort.dir > 0 ? " ▲" : " ▼") : "";
    return `<th><button type="button" class="sort" data-sort="${esc(c.key)}"
      aria-sort="${active ? (state.sort.dir > 0 ? "ascending" : "descending") : "none"}">${esc(c.label)}${arrow}</button></th>`;
  }).join("");
  const body = rows.map((r) => `<tr${r.attrs || ""}>${columns.map((c) =>
    `<td data-label="${esc(c.label)}"${c.num ? ' class="num"' : ""}><span>${r.cells[c.key] ?? ""}</span></td>`).join("")}</tr>`).join("");
  return `<div class="table-wrap"><table${options.id ? ` id="${esc(options.id)}"` : ""}>
    <thead><tr>${head}</tr></thead><tbody>${body}</tbody></table></div>`;
}

// A batch's progress: done, failed and cancelled units as coloured parts of one bar.
function progress(b) {
  const c = b.counts;
  const total = c.queued + c.running + c.done + c.failed + c.cancelled;
  const percent = Math.floor(Math.min(1, Math.max(0, b.progress)) * 100);
  let x = 0;
  const parts = ["done", "failed", "cancelled", "running"].map((k) => {
    const width = total ? (c[k] / total) * 100 : 0;
    const rect = `<rect class="${k}" x="${x.toFixed(2)}" y="0" width="${width.toFixed(2)}" height="10"><title>${k}: ${c[k]}</title></rect>`;
    x += width;
    return rect;
  }).join("");
  return `<div class="progress"><svg viewBox="0 0 100 10" preserveAspectRatio="none" role="progressbar"
      aria-valuemin="0" aria-valuemax="100" aria-valuenow="${percent}">
      <rect class="track" x="0" y="0" width="100" height="10"/>${parts}</svg>
    <span class="percent" data-progress="${percent}">${percent}%</span></div>`;
}

// ---- views -----------------------------------------------------------------------------------

function throughputChart(perMinute) {
  const w = 600, h = 140;
  const max = Math.max(1, ...perMinute);
  const total = perMinute.reduce((a, b) => a + b, 0);
  const barW = w / perMinute.length;
  const bars = perMinute.map((n, i) => {
    const bh = (n / max) * (h - 4);
    return `<rect class="bar" x="${(i * barW).toFixed(1)}" y="${(h - bh).toFixed(1)}"
      width="${Math.max(1, barW - 1).toFixed(1)}" height="${bh.toFixed(1)}"><title>${60 - i} min ago: ${n}</title></rect>`;
  }).join("");
  // Labels stay outside the SVG, which stretches to the panel's width.
  return `<div class="chart"><div class="chart-max">${num(max)}/min</div>
    <svg id="throughput-chart" data-total="${total}" viewBox="0 0 ${w} ${h}" role="img"
      aria-label="Units finished per minute, last hour (${total} in all)" preserveAspectRatio="none">
    <line class="axis" x1="0" y1="${h}" x2="${w}" y2="${h}"/>${bars}</svg>
    <div class="chart-axis"><span>−60 min</span><span>now</span></div></div>`;
}

function outcomesBar(results) {
  const parts = [
    ["valid", results.valid], ["invalid", results.invalid],
    ["errors", results.errors], ["timed_out", results.timed_out],
  ];
  const total = parts.reduce((a, [, n]) => a + n, 0);
  let x = 0;
  const rects = total === 0 ? `<rect class="none" x="0" y="0" width="100" height="10"/>` :
    parts.map(([k, n]) => {
      const width = (n / total) * 100;
      const rect = `<rect class="${k}" x="${x}" y="0" width="${width}" height="10"><title>${k}: ${n}</title></rect>`;
      x += width;
      return rect;
    }).join("");
  const legend = parts.map(([k, n]) =>
    `<li><span class="swatch ${k}"></span>${esc(k.replace("_", " "))} <b>${num(n)}</b></li>`).join("");
  return `<svg class="outcomes" viewBox="0 0 100 10" preserveAspectRatio="none" role="img"
    aria-label="Validation outcomes">${rects}</svg><ul class="legend">${legend}</ul>`;
}

async function overview() {
  const stats = await api("/api/v1/stats");
  const u = stats.units;
  const lastHour = stats.done_per_minute.reduce((a, b) => a + b, 0);
  let html = `<h1>Overview</h1><div class="cards">
    ${card("Hosts online", `${num(stats.hosts_online)} <small>/ ${num(stats.hosts_known)}</small>`, "online / known", "hosts-card")}
    ${card("Slots busy", `${num(stats.slots_busy)} <small>/ ${num(stats.slots_total)}</small>`, "running / total")}
    ${card("Queue depth", num(stats.queue_depth), "replicas waiting")}
    ${card("Units done", num(u.done), `${num(lastHour)} in the last hour`)}
    ${card("Units failed", num(u.failed), `${num(u.cancelled)} cancelled`)}
    ${card("Active batches", num(stats.batches_active), `${num(u.queued)} queued · ${num(u.running)} running`)}
  </div>
  <section class="panel"><h2>Throughput <small>units finished per minute, last hour</small></h2>
    ${throughputChart(stats.done_per_minute)}</section>
  <section class="panel"><h2>Validation outcomes <small>returned results</small></h2>
    ${outcomesBar(stats.results)}</section>`;
  if (stats.hosts_known === 0 && u.queued + u.running + u.done + u.failed + u.cancelled === 0) {
    html += empty("Nothing here yet", "No host has joined and no work was submitted. Volunteers join with " +
      "<code>musketeer join</code>; researchers submit with <code>musketeer submit</code>.");
  }
  return html;
}

const HOST_COLUMNS = [
  { key: "name", label: "Name" }, { key: "arch", label: "Arch / OS" },
  { key: "client", label: "Client" }, { key: "backend", label: "Backend" },
  { key: "slots", label: "Slots", num: true }, { key: "running", label: "Running", num: true },
  { key: "succeeded", label: "Succeeded", num: true }, { key: "failed", label: "Failed", num: true },
  { key: "invalid", label: "Invalid", num: true }, { key: "credit", label: "Credit", num: true },
  { key: "last_contact_ms", label: "Last contact" }, { key: "online", label: "Status" },
  { key: "standing", label: "Standing" },
];

// Banned, quarantined, trusted or new; the reason shows on hover and on the host page.
function standingBadge(h) {
  if (h.ban) return `<span title="${esc(h.ban)}">${badge("banned", "failed")}</span>`;
  if (h.quarantine) return `<span title="${esc(h.quarantine)}">${badge("quarantined", "invalid")}</span>`;
  return h.trusted ? badge("trusted", "valid") : badge("replicated", "pending");
}

function standingText(h) {
  if (h.ban) return `banned: ${h.ban}`;
  if (h.quarantine) return `quarantined: ${h.quarantine}`;
  return h.trusted ? "trusted: runs units alone, with spot checks" : "replicated: not yet trusted";
}

function hostSortValue(h, key) {
  const p = h.platform || {};
  switch (key) {
    case "arch": return `${p.arch || ""}/${p.os || ""}`;
    case "client": return p.client_version || "";
    case "backend": return p.backend || "";
    case "slots": return p.slots || 0;
    case "online": return h.online ? 1 : 0;
    case "standing": return h.ban ? 0 : h.quarantine ? 1 : h.trusted ? 3 : 2;
    default: return h[key];
  }
}

function rememberHosts(list) {
  for (const h of list) state.hostNames[h.id] = h.name;
}

async function hosts() {
  const list = (await api("/api/v1/hosts")).hosts;
  rememberHosts(list);
  if (list.length === 0) {
    return `<h1>Hosts</h1>` + empty("No hosts yet",
      "No volunteer has joined this project. Start one with <code>musketeer join</code> and it appears here within seconds.");
  }
  const { key, dir } = state.sort;
  const valid = HOST_COLUMNS.some((c) => c.key === key);
  const sorted = [...list].sort((a, b) => {
    const x = hostSortValue(a, valid ? key : "name"), y = hostSortValue(b, valid ? key : "name");
    return (x < y ? -1 : x > y ? 1 : a.id - b.id) * dir;
  });
  const now = Date.now();
  const rows = sorted.map((h) => {
    const p = h.platform || {};
    return {
      attrs: ` data-host="${h.id}"`,
      cells: {
        name: `<a href="#/host/${h.id}">${esc(h.name)}</a>`,
        arch: p.arch ? `<span class="arch">${esc(p.arch)}</span> / ${esc(p.os)}` : "–",
        client: esc(p.client_version || "–"), backend: p.backend ? badge(p.backend) : "–",
        slots: num(p.slots), running: num(h.running), succeeded: num(h.succeeded),
        failed: num(h.failed), invalid: num(h.invalid), credit: num(h.credit),
        last_contact_ms: `<span title="${esc(when(h.last_contact_ms))}">${esc(ago(h.last_contact_ms, now))}</span>`,
        online: h.online ? badge("online") : badge("offline"),
        standing: standingBadge(h),
      },
    };
  });
  const online = list.filter((h) => h.online).length;
  return `<h1>Hosts <small>${online} online of ${list.length}</small></h1>` +
    table(HOST_COLUMNS, rows, { sortable: true, id: "hosts-table" });
}

function replicaRows(replicas, withHost, withLog) {
  return replicas.map((r) => ({
    cells: {
      result: `<a href="#/unit/${r.result_id.split(".")[0]}">${esc(r.result_id)}</a>`,
      batch: `<a href="#/batch/${r.batch_id}">${r.batch_id}</a>`,
      host: r.host ? `<a href="#/host/${r.host}">${esc(state.hostNames[r.host] || `host ${r.host}`)}</a>` : "–",
      outcome: badge(r.outcome.replace("_", " "), r.outcome),
      sent: r.sent_ms ? `<span title="${esc(when(r.sent_ms))}">${esc(ago(r.sent_ms, Date.now()))}</span>` : "–",
      fuel: r.fuel == null ? "–" : num(r.fuel),
      wall: r.wall_ms == null ? "–" : `${num(r.wall_ms)} ms`,
      error: r.error ? `<span class="error-text">${esc(r.error)}</span>` : "",
      log: withLog && r.stderr_tail ? `<details data-key="log-${esc(r.result_id)}"><summary>stderr</summary><pre>${esc(r.stderr_tail)}</pre></details>` : "",
    },
  }));
}

function replicaColumns(withHost, withLog) {
  return [
    { key: "result", label: "Result" }, { key: "batch", label: "Batch" },
    ...(withHost ? [{ key: "host", label: "Host" }] : []),
    { key: "outcome", label: "Outcome" }, { key: "sent", label: "Sent" },
    { key: "fuel", label: "Fuel", num: true }, { key: "wall", label: "Wall time", num: true },
    { key: "error", label: "Error" }, ...(withLog ? [{ key: "log", label: "Log" }] : []),
  ];
}

async function hostPage(id) {
  const detail = await api(`/api/v1/hosts/${encodeURIComponent(id)}`);
  const h = detail.host, p = h.platform || {};
  const now = Date.now();
  return `<p><a href="#/hosts">← Hosts</a></p><h1>${esc(h.name)} <small>host ${h.id}</small> ${h.online ? badge("online") : badge("offline")}</h1>
    <dl class="facts">
      <dt>Architecture</dt><dd class="arch">${esc(p.arch || "–")}</dd><dt>OS</dt><dd>${esc(p.os || "–")}</dd>
      <dt>Client</dt><dd>${esc(p.client_version || "–")}</dd><dt>wasmtime</dt><dd>${esc(p.wasmtime_version || "–")} ${p.backend ? badge(p.backend) : ""}</dd>
      <dt>Slots</dt><dd>${num(p.slots)} (${num(h.running)} running)</dd>
      <dt>Memory per task</dt><dd>${p.max_task_memory ? "up to " + bytes(p.max_task_memory) : "no limit given"}</dd>
      <dt>Results</dt><dd>${num(h.succeeded)} succeeded · ${num(h.failed)} failed · ${num(h.invalid)} invalid</dd>
      <dt>Credit</dt><dd>${num(h.credit)} fuel</dd>
      <dt>Standing</dt><dd>${standingBadge(h)} ${esc(standingText(h))}</dd>
      <dt>Daily quota</dt><dd>${num(h.daily_quota)} results (halves with each error or invalid result)</dd>
      <dt>Registered</dt><dd>${esc(when(h.registered_ms))}</dd><dt>Last contact</dt><dd>${esc(ago(h.last_contact_ms, now))}</dd>
    </dl>
    <h2>Recent units</h2>` + (detail.recent.length === 0 ? empty("No units yet", "This host has not been given work yet.")
      : table(replicaColumns(false, false), replicaRows(detail.recent, false, false)));
}

async function apps() {
  const versions = (await api("/api/v1/apps")).versions;
  if (versions.length === 0) {
    return `<h1>Apps</h1>` + empty("No apps published",
      "Task authors sign a module with <code>musketeer sign</code> and publish it with <code>musketeer publish</code>.");
  }
  const columns = [
    { key: "app", label: "App" }, { key: "version", label: "Version" }, { key: "key", label: "Signing key" },
    { key: "module", label: "Module" }, { key: "allow", label: "HTTP allowlist" },
    { key: "limits", label: "Limits" }, { key: "published", label: "Published" },
  ];
  const rows = [...versions].reverse().map((a) => ({
    cells: {
      app: `<b>${esc(a.app)}</b>`, version: esc(a.version), key: `<code>${esc(a.key_id)}</code>`,
      module: `<code title="${esc(a.module_sha256)}">${esc(a.module_sha256.slice(0, 12))}…</code> ${esc(bytes(a.module_size))}`,
      allow: a.http_allow.length ? a.http_allow.map((x) => `<code>${esc(x)}</code>`).join("<br>") : '<span class="muted">none</span>',
      limits: `fuel ${num(a.limits.fuel)}<br>memory ${esc(bytes(a.limits.memory_bytes))}<br>wall ${num(a.limits.wall_time_ms)} ms<br>output ${esc(bytes(a.limits.output_bytes))}`,
      published: esc(when(a.published_ms)),
    },
  }));
  const count = `${versions.length} version${versions.length === 1 ? "" : "s"}`;
  return `<h1>Apps <small>${count}</small></h1>` + table(columns, rows, { id: "apps-table" });
}

function rateAndEta(b, now) {
  const c = b.counts;
  const finished = c.done + c.failed + c.cancelled;
  const total = finished + c.queued + c.running;
  const minutes = Math.max((now - b.created_ms) / 60000, 1 / 60);
  const rate = finished / minutes;
  if (b.state !== "running") return { text: b.state };
  const eta = rate > 0 ? `ETA ${duration((total - finished) / rate)}` : "ETA –";
  return { text: `${rate.toFixed(1)} units/min · ${eta}` };
}

function counts(c) {
  return ["queued", "running", "done", "failed", "cancelled"]
    .map((k) => `<span class="count ${k}">${k} <b>${num(c[k])}</b></span>`).join(" ");
}

function batchTitle(b) {
  return `${b.label ? esc(b.label) + " · " : ""}${esc(b.app)} ${esc(b.version)}`;
}

async function batches() {
  let list;
  try { list = (await api("/api/v1/batches")).batches; } catch (e) {
    const html = needsToken(e, "Batches");
    if (html) return `<h1>Batches</h1>` + html;
    throw e;
  }
  if (list.length === 0) {
    return `<h1>Batches</h1>` + empty("No batches", "Submit one with <code>musketeer submit</code>.");
  }
  const now = Date.now();
  const items = list.map((b) => {
    const pace = rateAndEta(b, now).text;
    return `<article class="batch" data-batch="${b.id}">
      <header><a href="#/batch/${b.id}"><b>Batch ${b.id}</b></a> ${batchTitle(b)} ${badge(b.state)}</header>
      ${progress(b)}
      <div class="counts">${counts(b.counts)}</div>
      <div class="muted">${esc(pace)} · submitted ${esc(ago(b.created_ms, now))}</div>${stalled(b)}
    </article>`;
  }).join("");
  return `<h1>Batches</h1><div class="batches">${items}</div>`;
}

// Units wait and no online host can take them (none online, or all cap task memory lower), or
// some are stalled: every online host able to run them already returned a replica.
function stalled(b) {
  const none = b.hosts_able === 0
    ? `<p class="error-text" data-stalled>No online host can take the waiting units: none is online, or every volunteer's memory limit per task (<code>--max-task-memory</code>) is below this app's.</p>`
    : "";
  const some = b.stalled > 0
    ? `<p class="error-text" data-stalled-units>${esc(b.stalled)} unit(s) stalled: ${esc(b.stalled_reason || "no online host may take them")}</p>`
    : "";
  return none + some;
}

async function batchPage(id) {
  let b, failed, units;
  try {
    [b, failed, units] = await Promise.all([
      api(`/api/v1/batches/${encodeURIComponent(id)}`),
      api(`/api/v1/batches/${encodeURIComponent(id)}/units?state=failed&limit=50`),
      api(`/api/v1/batches/${encodeURIComponent(id)}/units?limit=100`),
    ]);
  } catch (e) {
    const html = needsToken(e, "Batches");
    if (html) return html;
    throw e;
  }
  const now = Date.now();
  const pace = rateAndEta(b, now).text;
  const r = b.replication;
  const failures = failed.total === 0 ? `<p class="muted">No failures.</p>` :
    table([{ key: "unit", label: "Unit" }, { key: "error", label: "Error" }], failed.units.map((u) => ({
      cells: { unit: `<a href="#/unit/${u.id}">${u.id}</a>`, error: `<span class="error-text">${esc(u.error)}</span>` },
    }))) + (failed.total > failed.units.length ? `<p class="muted">${num(failed.total - failed.units.length)} more</p>` : "");
  const unitTable = table([{ key: "unit", label: "Unit" }, { key: "state", label: "State" },
    { key: "replicas", label: "Replicas", num: true }, { key: "error", label: "Error" }],
  units.units.map((u) => ({ cells: {
    unit: `<a href="#/unit/${u.id}">${u.id}</a>`, state: badge(u.state), replicas: num(u.replicas),
    error: u.error ? `<span class="error-text">${esc(u.error)}</span>` : "",
  } })));
  return `<p><a href="#/batches">← Batches</a></p>
    <h1>Batch ${b.id} <small>${batchTitle(b)}</small> ${badge(b.state)}</h1>
    <section class="panel" data-batch="${b.id}">${progress(b)}<div class="counts">${counts(b.counts)}</div>
    <div class="muted">${esc(pace)} · submitted ${esc(when(b.created_ms))} ·
      quorum ${r.min_quorum}, ${r.target_nresults} replicas, up to ${r.max_total_results}, priority ${b.priority}</div>${stalled(b)}</section>
    <h2>Failures <small>${num(failed.total)}</small></h2>${failures}
    <h2>Units <small>${units.units.length < units.total ? `first ${units.units.length} of ` : ""}${num(units.total)}</small></h2>${unitTable}`;
}

async function unitPage(id) {
  let u;
  // Host names for the replica table; a token that may not list hosts still sees their ids.
  const names = api("/api/v1/hosts").then((h) => rememberHosts(h.hosts), () => {});
  try { [u] = await Promise.all([api(`/api/v1/units/${encodeURIComponent(id)}`), names]); } catch (e) {
    const html = needsToken(e, "Units");
    if (html) return html;
    throw e;
  }
  return `<p><a href="#/batch/${u.batch_id}">← Batch ${u.batch_id}</a></p>
    <h1>Unit ${u.id} ${badge(u.state)}</h1>
    ${u.error ? `<p class="error-text">${esc(u.error)}</p>` : ""}
    ${u.stalled ? `<p class="error-text" data-stalled-unit>${esc(u.stalled)}</p>` : ""}
    <h2>Input</h2><pre class="input">${esc(JSON.stringify(u.input, null, 2))}</pre>
    <h2>Replicas</h2>${table(replicaColumns(true, true), replicaRows(u.replicas, true, true))}`;
}

// ---- routing and refresh ---------------------------------------------------------------------

function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/");
  switch (parts[0]) {
    case "hosts": return { nav: "hosts", render: hosts };
    case "host": return { nav: "hosts", render: () => hostPage(parts[1]) };
    case "apps": return { nav: "apps", render: apps };
    case "batches": return { nav: "batches", render: batches };
    case "batch": return { nav: "batches", render: () => batchPage(parts[1]) };
    case "unit": return { nav: "batches", render: () => unitPage(parts[1]) };
    default: return { nav: "overview", render: overview };
  }
}

function setLive(ok, message) {
  const live = document.getElementById("live");
  live.className = ok ? "live ok" : "live down";
  live.title = message;
  document.getElementById("updated").textContent = ok ? `updated ${new Date().toLocaleTimeString()}` : message;
}

async function refresh() {
  if (state.busy) {
    state.again = true;
    return;
  }
  state.busy = true;
  state.again = false;
  const current = route();
  for (const a of document.querySelectorAll("#nav a")) {
    a.classList.toggle("active", a.dataset.view === current.nav);
  }
  try {
    const html = await current.render();
    const open = new Set([...view.querySelectorAll("details[open]")].map((d) => d.dataset.key));
    view.innerHTML = html;
    for (const d of view.querySelectorAll("details")) if (open.has(d.dataset.key)) d.open = true;
    setLive(true, "live");
  } catch (e) {
    const html = needsToken(e, "These views");
    if (html) {
      view.innerHTML = html;
      setLive(true, "live");
    } else if (e instanceof ApiError) {
      view.innerHTML = empty(e.status === 404 ? "Not found" : "Error", esc(e.message));
      setLive(true, "live");
    } else {
      setLive(false, "server unreachable; retrying");
    }
  } finally {
    state.busy = false;
  }
  // A navigation during the fetch renders the new view at once.
  if (state.again) refresh();
}

async function loadProject() {
  try {
    state.project = await api("/api/v1/project");
    document.getElementById("project-name").textContent = state.project.name;
    document.title = `${state.project.name} · musketeer`;
  } catch (_) { /* retried on the next refresh */ }
}

function toggleTokenForm(show) {
  const form = document.getElementById("token-form");
  form.hidden = show === undefined ? !form.hidden : !show;
  if (!form.hidden) document.getElementById("token-input").focus();
}

function updateTokenButton() {
  document.getElementById("token-button").textContent = token() ? "Token ✓" : "Token";
}

document.getElementById("token-button").addEventListener("click", () => toggleTokenForm());
document.getElementById("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = document.getElementById("token-input");
  if (input.value.trim()) sessionStorage.setItem(TOKEN_KEY, input.value.trim());
  input.value = "";
  toggleTokenForm(false);
  updateTokenButton();
  refresh();
});
document.getElementById("token-forget").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  toggleTokenForm(false);
  updateTokenButton();
  refresh();
});
view.addEventListener("click", (event) => {
  const sort = event.target.closest("[data-sort]");
  if (sort) {
    const key = sort.dataset.sort;
    state.sort = { key, dir: state.sort.key === key ? -state.sort.dir : 1 };
    refresh();
  }
  if (event.target.closest("[data-action=token]")) toggleTokenForm(true);
});
window.addEventListener("hashchange", refresh);

updateTokenButton();
if (!state.project) loadProject();
refresh();
setInterval(() => {
  if (!document.hidden) refresh();
  if (!state.project) loadProject();
}, POLL_MS);
