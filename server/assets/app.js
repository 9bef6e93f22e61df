// The musketeer dashboard: one page, views chosen by the URL fragment, data from the JSON API,
// refreshed by polling. No framework and nothing loaded from elsewhere. This file routes,
// refreshes, signs in and out, and handles clicks; the views live in the other modules.

import {
  ApiError, TOKEN_KEY, api, empty, esc, currentRoute, needsToken, state, token, withParams,
} from "./core.js";
import { overview, statusPage } from "./overview.js";
import { apps, hostPage, hosts } from "./hosts.js";
import { batchPage, batches, cancelBatch, download, failuresPage, unitPage } from "./batches.js";

const POLL_MS = 2000;
const view = document.getElementById("view");

function route() {
  const { parts } = currentRoute();
  switch (parts[0]) {
    case "hosts": return { nav: "hosts", render: hosts };
    case "host": return { nav: "hosts", render: () => hostPage(parts[1]) };
    case "apps": return { nav: "apps", render: apps };
    case "status": return { nav: "status", render: statusPage };
    case "batches": return { nav: "batches", render: batches };
    case "batch": return { nav: "batches", render: () => batchPage(parts[1]) };
    case "unit": return { nav: "batches", render: () => unitPage(parts[1]) };
    case "failures": return { nav: "failures", render: failuresPage };
    default: return { nav: "overview", render: overview };
  }
}

function setLive(ok, message) {
  const live = document.getElementById("live");
  live.className = ok ? "live ok" : "live down";
  live.title = message;
  document.getElementById("updated").textContent = ok ? `updated ${new Date().toLocaleTimeString()}` : message;
}

// Replace the view, keeping open log panels and the focused control (polling must not pull a
// keyboard user's focus away).
function show(html, route) {
  const open = new Set([...view.querySelectorAll("details[open]")].map((d) => d.dataset.key));
  const focused = document.activeElement && view.contains(document.activeElement) ? document.activeElement.id : "";
  view.innerHTML = html;
  for (const d of view.querySelectorAll("details")) if (open.has(d.dataset.key)) d.open = true;
  if (focused) document.getElementById(focused)?.focus();
  // Which view the page shows now, for scripts and tests that must not read a stale one.
  view.dataset.route = route;
}

async function refresh() {
  if (state.busy) {
    state.again = true;
    return;
  }
  state.busy = true;
  state.again = false;
  const current = route();
  const shown = location.hash || "#/";
  for (const a of document.querySelectorAll("#nav a")) {
    a.classList.toggle("active", a.dataset.view === current.nav);
    if (a.dataset.view === current.nav) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  try {
    show(await current.render(), shown);
    setLive(true, "live");
  } catch (e) {
    const html = needsToken(e, "These views");
    if (html) {
      show(html, shown);
      setLive(true, "live");
    } else if (e instanceof ApiError) {
      show(empty(e.status === 404 ? "Not found" : "Error", esc(e.message)), shown);
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

// ---- sign-in: the token goes to sessionStorage, never into a URL ------------------------------

function toggleSignIn(show) {
  const form = document.getElementById("sign-in-form");
  form.hidden = show === undefined ? !form.hidden : !show;
  if (!form.hidden) document.getElementById("token-input").focus();
}

function updateSession() {
  const signedIn = Boolean(token());
  document.getElementById("sign-in-button").textContent = signedIn ? "Signed in ✓" : "Sign in";
  document.getElementById("sign-out").hidden = !signedIn;
}

document.getElementById("sign-in-button").addEventListener("click", () => toggleSignIn());
document.getElementById("sign-in-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = document.getElementById("token-input");
  if (input.value.trim()) sessionStorage.setItem(TOKEN_KEY, input.value.trim());
  input.value = "";
  toggleSignIn(false);
  updateSession();
  refresh();
});
document.getElementById("sign-out").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  toggleSignIn(false);
  updateSession();
  refresh();
});

// ---- actions ----------------------------------------------------------------------------------

// Run an action; its refusal (e.g. the batch finished meanwhile) shows above the view.
async function act(work) {
  const notice = document.getElementById("notice");
  notice.hidden = true;
  try {
    await work();
  } catch (e) {
    notice.textContent = e instanceof ApiError ? e.message : `Could not reach the server: ${e.message}`;
    notice.hidden = false;
  }
  refresh();
}

view.addEventListener("click", (event) => {
  const sort = event.target.closest("[data-sort]");
  if (sort) {
    const key = sort.dataset.sort;
    state.sort = { key, dir: state.sort.key === key ? -state.sort.dir : 1 };
    refresh();
  }
  const action = event.target.closest("[data-action]");
  if (!action) return;
  const batch = action.dataset.batch;
  switch (action.dataset.action) {
    case "sign-in": toggleSignIn(true); break;
    case "cancel": state.confirmCancel = Number(batch); refresh(); break;
    case "cancel-keep": state.confirmCancel = null; refresh(); break;
    case "cancel-confirm": act(() => cancelBatch(batch)); break;
    case "download": act(() => download(batch, action.dataset.format)); break;
    default: break;
  }
});
// Filters rewrite the view's query and start again from the first page.
view.addEventListener("change", (event) => {
  const select = event.target.closest("[data-filter]");
  if (select) location.hash = withParams({ [select.dataset.filter]: select.value, after: null });
});
window.addEventListener("hashchange", () => {
  state.confirmCancel = null;
  refresh();
});

updateSession();
loadProject();
refresh();
// Polling skips a view whose filter is being chosen: replacing it would close the open list.
function choosing() {
  const active = document.activeElement;
  return active && active.tagName === "SELECT" && view.contains(active);
}

setInterval(() => {
  if (!document.hidden && !choosing()) refresh();
  if (!state.project) loadProject();
}, POLL_MS);
