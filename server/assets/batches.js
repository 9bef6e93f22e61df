// Batches, a batch's page (progress, actions, failures, units with filter and pages), a unit's
// page and the failures view. All need a researcher's or admin's token.

import {
  ago, api, badge, bytes, duration, empty, esc, fetchBlob, filter, hostLink, loadHostNames,
  currentRoute, num, orSignIn, pager, state, table, unitBadge, when,
} from "./core.js";
import { replicaColumns, replicaRows } from "./hosts.js";

// Rows per page unless the view's query says `limit=`.
const PAGE = 50;
const FAILURES_ON_BATCH_PAGE = 10;

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
      aria-label="Batch ${b.id} progress" aria-valuemin="0" aria-valuemax="100" aria-valuenow="${percent}">
      <rect class="track" x="0" y="0" width="100" height="10"/>${parts}</svg>
    <span class="percent" data-progress="${percent}">${percent}%</span></div>`;
}

function rateAndEta(b, now) {
  const c = b.counts;
  const finished = c.done + c.failed + c.cancelled;
  const total = finished + c.queued + c.running;
  const minutes = Math.max((now - b.created_ms) / 60000, 1 / 60);
  const rate = finished / minutes;
  if (b.state !== "running") return b.state;
  const eta = rate > 0 ? `ETA ${duration((total - finished) / rate)}` : "ETA –";
  return `${rate.toFixed(1)} units/min · ${eta}`;
}

function counts(c, retrying) {
  const parts = ["queued", "running", "done", "failed", "cancelled"]
    .map((k) => `<span class="count ${k}">${k} <b>${num(c[k])}</b></span>`);
  if (retrying !== undefined) {
    parts.splice(2, 0, `<span class="count retrying">retrying <b>${num(retrying)}</b></span>`);
  }
  return parts.join(" ");
}

function batchTitle(b) {
  return `${b.label ? esc(b.label) + " · " : ""}${esc(b.app)} ${esc(b.version)}`;
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

export function batches() {
  return orSignIn("Batches", "<h1>Batches</h1>", async () => {
    const list = (await api("/api/v1/batches")).batches;
    if (list.length === 0) {
      return `<h1>Batches</h1>` + empty("No batches", "Submit one with <code>musketeer submit</code>.");
    }
    const now = Date.now();
    const items = list.map((b) => `<article class="batch" data-batch="${b.id}">
        <header><a href="#/batch/${b.id}"><b>Batch ${b.id}</b></a> ${batchTitle(b)} ${badge(b.state)}</header>
        ${progress(b)}
        <div class="counts">${counts(b.counts)}</div>
        <div class="muted">${esc(rateAndEta(b, now))} · submitted ${esc(ago(b.created_ms, now))}</div>${stalled(b)}
      </article>`).join("");
    return `<h1>Batches</h1><div class="batches">${items}</div>`;
  });
}

// Cancel (confirmed by a second click) and downloads, for the batch's owner or an admin: the
// page only loads for them.
function actions(b) {
  const cancel = b.state !== "running" ? ""
    : state.confirmCancel === b.id
      ? `<span role="group" aria-label="Confirm cancel"><button type="button" class="danger" data-action="cancel-confirm" data-batch="${b.id}">Yes, cancel batch ${b.id}</button>
         <button type="button" data-action="cancel-keep">Keep it running</button></span>`
      : `<button type="button" data-action="cancel" data-batch="${b.id}">Cancel batch…</button>`;
  const note = state.downloadNote && state.downloadNote.batch === b.id
    ? `<span id="download-note" class="muted" role="status">${esc(state.downloadNote.text)}</span>` : "";
  return `<div class="actions">
    <button type="button" data-action="download" data-format="csv" data-batch="${b.id}">Download CSV</button>
    <button type="button" data-action="download" data-format="jsonl" data-batch="${b.id}">Download JSONL</button>
    ${cancel} ${note}</div>`;
}

export async function cancelBatch(id) {
  await api(`/api/v1/batches/${encodeURIComponent(id)}/cancel`, { method: "POST" });
  state.confirmCancel = null;
}

// Results fetched with the token in a header, saved through a temporary object URL.
export async function download(id, format) {
  const blob = await fetchBlob(`/api/v1/batches/${encodeURIComponent(id)}/results?format=${format}`);
  const text = await blob.text();
  const lines = text.split("\n").filter((l) => l.length > 0).length;
  const name = `batch-${id}.${format}`;
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  state.downloadNote = { batch: Number(id), text: `Saved ${name}: ${lines} lines, ${bytes(blob.size)}` };
}

function failureRows(list) {
  const now = Date.now();
  return list.map((f) => ({
    attrs: ` data-result="${esc(f.result_id)}"`,
    cells: {
      result: `<a href="#/unit/${f.result_id.split(".")[0]}">${esc(f.result_id)}</a>`,
      batch: `<a href="#/batch/${f.batch_id}">${f.batch_id}</a>`, app: esc(f.app),
      host: hostLink(f.host), unit: unitBadge(f.unit_state, f.retrying),
      sent: f.sent_ms ? `<span title="${esc(when(f.sent_ms))}">${esc(ago(f.sent_ms, now))}</span>` : "–",
      error: `<span class="error-text">${esc(f.error)}</span>`,
    },
  }));
}

function failureColumns(withBatch) {
  return [
    { key: "result", label: "Result" }, ...(withBatch ? [{ key: "batch", label: "Batch" }, { key: "app", label: "App" }] : []),
    { key: "host", label: "Host" }, { key: "unit", label: "Unit now" }, { key: "sent", label: "Sent" },
    { key: "error", label: "Error (the task's words)" },
  ];
}

const UNIT_STATES = [["", "All states"], ["queued", "Queued"], ["running", "Running"],
  ["retrying", "Retrying"], ["done", "Done"], ["failed", "Failed"], ["cancelled", "Cancelled"]];

export function batchPage(id) {
  return orSignIn("Batches", "", async () => {
    const { params } = currentRoute();
    const unitQuery = new URLSearchParams({ limit: String(PAGE) });
    for (const k of ["state", "after", "limit"]) if (params.get(k)) unitQuery.set(k, params.get(k));
    const base = `/api/v1/batches/${encodeURIComponent(id)}`;
    const [b, failures, retrying, units] = await Promise.all([
      api(base),
      api(`/api/v1/failures?batch=${encodeURIComponent(id)}&limit=${FAILURES_ON_BATCH_PAGE}`),
      api(`${base}/units?state=retrying&limit=0`),
      api(`${base}/units?${unitQuery}`),
      loadHostNames(),
    ]);
    const now = Date.now();
    const r = b.replication;
    const failureList = failures.total === 0
      ? `<p class="muted">No failed replicas.</p>`
      : table(failureColumns(false), failureRows(failures.failures), { id: "batch-failures" }) +
        (failures.total > failures.failures.length
          ? `<p><a href="#/failures?batch=${b.id}">All ${num(failures.total)} failures →</a></p>` : "");
    const unitTable = units.units.length === 0 ? `<p class="muted">No unit matches.</p>`
      : table([{ key: "unit", label: "Unit" }, { key: "state", label: "State" },
        { key: "replicas", label: "Replicas", num: true }, { key: "failed", label: "Failed replicas", num: true },
        { key: "error", label: "Error" }],
      units.units.map((u) => ({ attrs: ` data-unit="${u.id}"`, cells: {
        unit: `<a href="#/unit/${u.id}">${u.id}</a>`, state: unitBadge(u.state, u.retrying),
        replicas: num(u.replicas), failed: num(u.failed_replicas),
        error: u.error ? `<span class="error-text">${esc(u.error)}</span>` : "",
      } })), { id: "units-table" });
    return `<p><a href="#/batches">← Batches</a></p>
      <h1>Batch ${b.id} <small>${batchTitle(b)}</small> ${badge(b.state)}</h1>
      <section class="panel" data-batch="${b.id}">${progress(b)}<div class="counts">${counts(b.counts, retrying.total)}</div>
      <div class="muted">${esc(rateAndEta(b, now))} · submitted ${esc(when(b.created_ms))} ·
        quorum ${r.min_quorum}, ${r.target_nresults} replicas, up to ${r.max_total_results}, priority ${b.priority}</div>${stalled(b)}
      ${actions(b)}</section>
      <h2 id="failures-heading">Failures <small><a href="#/failures?batch=${b.id}">${num(failures.total)} failed replicas</a> · ${num(b.counts.failed)} units failed · ${num(retrying.total)} retrying</small></h2>
      ${failureList}
      <h2>Units</h2><div class="filters">${filter("unit-state", "State", "state", UNIT_STATES, params.get("state"))}</div>
      ${unitTable}${pager(units.units.length, units.total, units.next_after, "units")}`;
  });
}

export function unitPage(id) {
  return orSignIn("Units", "", async () => {
    const [u] = await Promise.all([api(`/api/v1/units/${encodeURIComponent(id)}`), loadHostNames()]);
    const active = u.state === "queued" || u.state === "running";
    const retrying = active && u.replicas.some((r) => r.outcome === "error" || r.outcome === "timed_out");
    return `<p><a href="#/batch/${u.batch_id}">← Batch ${u.batch_id}</a></p>
      <h1>Unit ${u.id} ${unitBadge(u.state, retrying)}</h1>
      ${u.error ? `<p class="error-text">${esc(u.error)}</p>` : ""}
      ${u.stalled ? `<p class="error-text" data-stalled-unit>${esc(u.stalled)}</p>` : ""}
      <h2>Input</h2><pre class="input">${esc(JSON.stringify(u.input, null, 2))}</pre>
      <h2>Replicas</h2>${table(replicaColumns(true, true), replicaRows(u.replicas, true))}`;
  });
}

const FAILURE_STATES = [["", "Any unit"], ["retrying", "Unit retrying"], ["failed", "Unit failed"],
  ["done", "Unit done anyway"], ["cancelled", "Unit cancelled"]];

// Every failed replica (error, missed deadline, lost lease) of the caller's batches, as they
// happen: a unit may still be retrying, long before it counts as failed.
export function failuresPage() {
  return orSignIn("Failures", "<h1>Failures</h1>", async () => {
    const { params } = currentRoute();
    const query = new URLSearchParams({ limit: String(PAGE) });
    for (const k of ["batch", "state", "after", "limit"]) if (params.get(k)) query.set(k, params.get(k));
    const [list, batchList] = await Promise.all([
      api(`/api/v1/failures?${query}`), api("/api/v1/batches"), loadHostNames(),
    ]);
    const batchChoices = [["", "All batches"],
      ...batchList.batches.map((b) => [String(b.id), `Batch ${b.id}${b.label ? ` · ${b.label}` : ""}`])];
    const filters = `<div class="filters">
      ${filter("failure-batch", "Batch", "batch", batchChoices, params.get("batch"))}
      ${filter("failure-state", "Unit", "state", FAILURE_STATES, params.get("state"))}</div>`;
    const body = list.total === 0
      ? empty("No failures", "No replica of these batches failed. Errors, missed deadlines and lost leases appear here as they happen.")
      : table(failureColumns(true), failureRows(list.failures), { id: "failures-table" }) +
        pager(list.failures.length, list.total, list.next_after, "failures");
    return `<h1>Failures <small>${num(list.total)} failed replicas</small></h1>
      <p class="muted">A failed replica is an error report, a missed deadline or a lost lease. Its unit is
      queued again (<em>retrying</em>) until the batch's error limit; only then does the unit count as failed.</p>
      ${filters}${body}`;
  });
}
