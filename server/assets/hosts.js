// The hosts list and host pages, and the published apps.

import {
  ago, api, badge, bytes, credits, empty, esc, hostLink, num, rememberHosts, state, table, when,
} from "./core.js";

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

export async function hosts() {
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
        failed: num(h.failed), invalid: num(h.invalid), credit: credits(h.credit),
        last_contact_ms: `<span title="${esc(when(h.last_contact_ms))}">${esc(ago(h.last_contact_ms, now))}</span>`,
        online: h.online ? badge("online") : badge("offline"),
        standing: standingBadge(h),
      },
    };
  });
  const online = list.filter((h) => h.online).length;
  return `<h1>Hosts <small>${online} online of ${list.length}</small></h1>` +
    table(HOST_COLUMNS, rows, { sortable: true, id: "hosts-table" }) +
    `<p class="muted">Credit: validated work in credits of 10<sup>9</sup> fuel. Rates per hour are on the <a href="#/status">status page</a>.</p>`;
}

export function replicaRows(replicas, withLog) {
  return replicas.map((r) => ({
    cells: {
      result: `<a href="#/unit/${r.result_id.split(".")[0]}">${esc(r.result_id)}</a>`,
      batch: `<a href="#/batch/${r.batch_id}">${r.batch_id}</a>`,
      host: hostLink(r.host),
      outcome: badge(r.outcome.replace("_", " "), r.outcome),
      sent: r.sent_ms ? `<span title="${esc(when(r.sent_ms))}">${esc(ago(r.sent_ms, Date.now()))}</span>` : "–",
      fuel: r.fuel == null ? "–" : num(r.fuel),
      wall: r.wall_ms == null ? "–" : `${num(r.wall_ms)} ms`,
      error: r.error ? `<span class="error-text">${esc(r.error)}</span>` : "",
      log: withLog && r.stderr_tail ? `<details data-key="log-${esc(r.result_id)}"><summary>stderr</summary><pre>${esc(r.stderr_tail)}</pre></details>` : "",
    },
  }));
}

export function replicaColumns(withHost, withLog) {
  return [
    { key: "result", label: "Result" }, { key: "batch", label: "Batch" },
    ...(withHost ? [{ key: "host", label: "Host" }] : []),
    { key: "outcome", label: "Outcome" }, { key: "sent", label: "Sent" },
    { key: "fuel", label: "Fuel", num: true }, { key: "wall", label: "Wall time", num: true },
    { key: "error", label: "Error" }, ...(withLog ? [{ key: "log", label: "Log" }] : []),
  ];
}

export async function hostPage(id) {
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
      <dt>Credit</dt><dd id="host-credit">${credits(h.credit)} credits (${num(h.credit)} fuel)</dd>
      <dt>Standing</dt><dd>${standingBadge(h)} ${esc(standingText(h))}</dd>
      <dt>Daily quota</dt><dd>${num(h.daily_quota)} results (halves with each error or invalid result)</dd>
      <dt>Registered</dt><dd>${esc(when(h.registered_ms))}</dd><dt>Last contact</dt><dd>${esc(ago(h.last_contact_ms, now))}</dd>
    </dl>
    <h2>Recent units</h2>` + (detail.recent.length === 0 ? empty("No units yet", "This host has not been given work yet.")
      : table(replicaColumns(false, false), replicaRows(detail.recent, false)));
}

export async function apps() {
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
  return `<h1>Apps <small>${count}</small></h1>` + table(columns, rows, { id: "apps-table" }) +
    `<p class="muted">Units of each app by state: <a href="#/status">server status</a>.</p>`;
}
