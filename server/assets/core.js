// Shared helpers of the dashboard: API calls with the signed-in token, formatting, tables,
// filters and pagers. Views import what they need.

export const TOKEN_KEY = "musketeer.token";
// Fuel in one credit: musketeer_protocol::FUEL_PER_CREDIT (docs/operator.md, "Credit").
const FUEL_PER_CREDIT = 1e9;

// What survives a re-render: table sort, the batch awaiting cancel confirmation, the last
// download's note, host names by id, the project, and whether a refresh runs or is due again.
export const state = {
  sort: { key: "name", dir: 1 }, confirmCancel: null, downloadNote: null, hostNames: {},
  project: null, busy: false, again: false,
};

export function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) => ({
    "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;",
  })[c]);
}

// The token lives in this tab's sessionStorage only and travels in the Authorization header;
// no link or URL ever carries it.
export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
  }
}

function headers(accept) {
  const h = { Accept: accept };
  if (token()) h.Authorization = `Bearer ${token()}`;
  return h;
}

export async function api(path, options = {}) {
  const response = await fetch(path, {
    method: options.method || "GET", headers: headers("application/json"), cache: "no-store",
  });
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

// A download that needs the token: fetched with the header, handed to the browser as a blob.
export async function fetchBlob(path) {
  const response = await fetch(path, { headers: headers("*/*"), cache: "no-store" });
  if (!response.ok) {
    throw new ApiError(response.status, await response.json().catch(() => null));
  }
  return response.blob();
}

export function num(n) {
  return Number(n || 0).toLocaleString("en-US");
}

export function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB"];
  let value = Number(n || 0);
  let i = 0;
  while (value >= 1024 && i < units.length - 1) { value /= 1024; i += 1; }
  return `${i === 0 ? value : value.toFixed(1)} ${units[i]}`;
}

// Credits from raw fuel: two decimals, or three significant digits below one credit (small
// test tasks earn thousandths); the raw fuel shows on hover.
export function credits(fuel) {
  const value = Number(fuel || 0) / FUEL_PER_CREDIT;
  const text = value > 0 && value < 1 ? value.toPrecision(3)
    : value.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  return `<span class="credit" title="${esc(num(fuel))} fuel">${text}</span>`;
}

export function ago(ms, now) {
  if (!ms) return "never";
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

export function when(ms) {
  return ms ? new Date(ms).toLocaleString() : "–";
}

export function duration(minutes) {
  if (!isFinite(minutes)) return "–";
  if (minutes < 1) return `${Math.max(1, Math.round(minutes * 60))} s`;
  if (minutes < 120) return `${Math.round(minutes)} min`;
  return `${(minutes / 60).toFixed(1)} h`;
}

export function badge(text, kind) {
  return `<span class="badge ${esc(kind || text)}">${esc(text)}</span>`;
}

// A unit's state, "retrying" when it is active again after a failed replica.
export function unitBadge(unitState, retrying) {
  return retrying ? `<span title="queued again after a failed replica">${badge("retrying")}</span>`
    : badge(unitState);
}

export function empty(title, text) {
  return `<div class="empty"><h2>${esc(title)}</h2><p>${text}</p></div>`;
}

export function needsToken(error, what) {
  if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
    return `<div class="empty"><h2>${esc(what)} need you to sign in</h2>
      <p>${esc(error.message)}</p>
      <p><button type="button" data-action="sign-in">Sign in</button></p></div>`;
  }
  return null;
}

// Run `load`; a refusal for want of a token becomes the sign-in prompt.
export async function orSignIn(what, heading, load) {
  try {
    return await load();
  } catch (e) {
    const html = needsToken(e, what);
    if (html) return heading + html;
    throw e;
  }
}

export function card(label, value, sub, id) {
  return `<div class="card"${id ? ` id="${esc(id)}"` : ""}><div class="label">${esc(label)}</div>
    <div class="value">${value}</div>${sub ? `<div class="sub">${sub}</div>` : ""}</div>`;
}

export function table(columns, rows, options = {}) {
  const head = columns.map((c) => {
    const align = c.num ? ' class="num"' : "";
    if (!options.sortable) return `<th scope="col"${align}>${esc(c.label)}</th>`;
    const active = state.sort.key === c.key;
    const arrow = active ? (state.sort.dir > 0 ? " ▲" : " ▼") : "";
    return `<th scope="col"${align} aria-sort="${active ? (state.sort.dir > 0 ? "ascending" : "descending") : "none"}"><button type="button" class="sort" data-sort="${esc(c.key)}">${esc(c.label)}${arrow}</button></th>`;
  }).join("");
  const body = rows.map((r) => `<tr${r.attrs || ""}>${columns.map((c) =>
    `<td data-label="${esc(c.label)}"${c.num ? ' class="num"' : ""}><span>${r.cells[c.key] ?? ""}</span></td>`).join("")}</tr>`).join("");
  return `<div class="table-wrap"><table${options.id ? ` id="${esc(options.id)}"` : ""}>
    <thead><tr>${head}</tr></thead><tbody>${body}</tbody></table></div>`;
}

// The current view's path and query: `#/batch/3?state=failed` gives ["batch", "3"] and its params.
export function currentRoute() {
  const [path, query] = location.hash.replace(/^#\/?/, "").split("?");
  return { parts: path.split("/"), params: new URLSearchParams(query || "") };
}

// The hash of this view with `changes` applied to its query (null removes a key).
export function withParams(changes) {
  const { parts, params } = currentRoute();
  for (const [k, v] of Object.entries(changes)) {
    if (v === null || v === "") params.delete(k); else params.set(k, v);
  }
  const query = params.toString();
  return `#/${parts.join("/")}${query ? `?${query}` : ""}`;
}

// A labelled select that rewrites the view's query (see the change handler in app.js).
export function filter(id, label, key, options, current) {
  const choices = options.map(([value, text]) =>
    `<option value="${esc(value)}"${value === (current || "") ? " selected" : ""}>${esc(text)}</option>`).join("");
  return `<label for="${esc(id)}">${esc(label)}</label>
    <select id="${esc(id)}" data-filter="${esc(key)}">${choices}</select>`;
}

// "N of TOTAL" with links to the first and next pages (cursor paging: `after`).
export function pager(shown, total, nextAfter, what) {
  const { params } = currentRoute();
  const paged = params.has("after");
  const first = paged ? `<a href="${esc(withParams({ after: null }))}" data-page="first">First page</a>` : "";
  const next = nextAfter != null
    ? `<a href="${esc(withParams({ after: String(nextAfter) }))}" data-page="next">Next page →</a>` : "";
  const where = paged ? `after ${esc(params.get("after"))}` : "from the start";
  return `<nav class="pager" aria-label="${esc(what)} pages"><span class="muted">${num(shown)} ${esc(what)} shown of ${num(total)}, ${where}</span> ${first} ${next}</nav>`;
}

export function rememberHosts(list) {
  for (const h of list) state.hostNames[h.id] = h.name;
}

// Host names for tables of replicas; a token that may not list hosts still sees their ids.
export function loadHostNames() {
  return api("/api/v1/hosts").then((h) => rememberHosts(h.hosts), () => {});
}

export function hostLink(id) {
  return id ? `<a href="#/host/${id}">${esc(state.hostNames[id] || `host ${id}`)}</a>` : "–";
}
