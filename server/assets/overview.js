// The overview (counters, throughput, validation outcomes, unit states over time) and the server
// status page (units by app, hosts' rates), as BOINC's server status page and Flower's monitor.

import { api, badge, card, credits, empty, esc, num, table } from "./core.js";

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
    <svg id="throughput-chart" class="chart-svg" data-total="${total}" viewBox="0 0 ${w} ${h}" role="img"
      aria-label="Units finished per minute, last hour (${total} in all)" preserveAspectRatio="none">
    <line class="axis" x1="0" y1="${h}" x2="${w}" y2="${h}"/>${bars}</svg>
    <div class="chart-axis"><span>−60 min</span><span>now</span></div></div>`;
}

// Errors link to the failures view: they count failed replicas, which "Units failed" does not.
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
  const legend = parts.map(([k, n]) => {
    const text = `${esc(k.replace("_", " "))} <b>${num(n)}</b>`;
    const linked = k === "errors" || k === "timed_out"
      ? `<a href="#/failures" data-link="failures">${text}</a>` : text;
    return `<li><span class="swatch ${k}"></span>${linked}</li>`;
  }).join("");
  return `<svg class="outcomes" viewBox="0 0 100 10" preserveAspectRatio="none" role="img"
    aria-label="Validation outcomes">${rects}</svg><ul class="legend" id="outcomes-legend">${legend}</ul>`;
}

const SERIES = ["queued", "running", "retrying", "done", "failed"];
const HOUR_MS = 3600000;
// The graph spans its samples, from a minute to an hour, so that a young server's fill the width.
const MIN_SPAN_MS = 60000;

function minutes(ms) {
  return ms < 60000 ? `${Math.max(1, Math.round(ms / 1000))} s` : `${Math.round(ms / 60000)} min`;
}

// Units by state over the last hour, one line per state, from the server's samples.
function stateChart(history, now) {
  const w = 600, h = 140;
  const samples = history.filter((s) => s.at_ms >= now - HOUR_MS);
  const span = Math.min(HOUR_MS, Math.max(MIN_SPAN_MS, now - (samples.length ? samples[0].at_ms : now)));
  const start = now - span;
  const max = Math.max(1, ...samples.flatMap((s) => SERIES.map((k) => s[k])));
  const x = (at) => (((at - start) / span) * w).toFixed(1);
  const y = (n) => (h - 2 - (n / max) * (h - 4)).toFixed(1);
  const lines = SERIES.map((k) => {
    // Steps: a count holds until the next sample shows it changed.
    const points = samples.map((s, i) => {
      const step = i > 0 ? `${x(s.at_ms)},${y(samples[i - 1][k])} ` : "";
      return `${step}${x(s.at_ms)},${y(s[k])}`;
    }).join(" ");
    const last = samples[samples.length - 1];
    // A single sample is a dot; more are a line.
    const mark = samples.length === 1
      ? `<circle class="series ${k}" cx="${x(last.at_ms)}" cy="${y(last[k])}" r="3"/>`
      : `<polyline class="series ${k}" points="${points}"/>`;
    return `<g data-series="${k}"><title>${k}: ${num(last ? last[k] : 0)} now</title>${mark}</g>`;
  }).join("");
  const last = samples[samples.length - 1] || {};
  const legend = SERIES.map((k) =>
    `<li><span class="swatch line ${k}"></span>${k} <b>${num(last[k])}</b></li>`).join("");
  return `<div class="chart"><div class="chart-max">${num(max)} units</div>
    <svg id="state-chart" class="chart-svg" data-samples="${samples.length}" viewBox="0 0 ${w} ${h}" role="img"
      aria-label="Units by state over the last hour" preserveAspectRatio="none">
    <line class="axis" x1="0" y1="${h}" x2="${w}" y2="${h}"/>${lines}</svg>
    <div class="chart-axis"><span>−${minutes(span)}</span><span>now</span></div>
    <ul class="legend" id="state-legend">${legend}</ul></div>`;
}

export async function overview() {
  const [stats, status] = await Promise.all([api("/api/v1/stats"), api("/api/v1/status")]);
  const u = stats.units;
  const lastHour = stats.done_per_minute.reduce((a, b) => a + b, 0);
  const retrying = status.history.length ? status.history[status.history.length - 1].retrying : 0;
  const failedReplicas = stats.results.errors + stats.results.timed_out;
  // "Units failed" counts units given up; failed replicas that are being retried show beside it.
  const failedSub = `gave up · <a href="#/failures" data-link="failures">${num(failedReplicas)} failed replicas</a>, ${num(retrying)} unit${retrying === 1 ? "" : "s"} retrying`;
  let html = `<h1>Overview</h1><div class="cards">
    ${card("Hosts online", `${num(stats.hosts_online)} <small>/ ${num(stats.hosts_known)}</small>`, "online / known", "hosts-card")}
    ${card("Slots busy", `${num(stats.slots_busy)} <small>/ ${num(stats.slots_total)}</small>`, "running / total")}
    ${card("Queue depth", num(stats.queue_depth), "replicas waiting")}
    ${card("Units done", num(u.done), `${num(lastHour)} in the last hour`)}
    ${card("Units failed", num(u.failed), failedSub, "failed-card")}
    ${card("Active batches", num(stats.batches_active), `${num(u.queued)} queued · ${num(u.running)} running`)}
  </div>
  <section class="panel"><h2>Units by state <small>last hour, sampled every 10 s</small></h2>
    ${stateChart(status.history, status.now_ms)}</section>
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

// Rates per hour only from a window of a minute or more: seconds would extrapolate wildly.
const MIN_RATE_WINDOW_MS = 60000;

function perHour(n, windowMs) {
  return windowMs >= MIN_RATE_WINDOW_MS ? (n * HOUR_MS) / windowMs : NaN;
}

export async function statusPage() {
  const status = await api("/api/v1/status");
  const apps = status.apps.length === 0 ? empty("No work yet", "No batch was submitted.")
    : table([
      { key: "app", label: "App" }, { key: "unsent", label: "Unsent", num: true },
      { key: "in_progress", label: "In progress", num: true }, { key: "retrying", label: "Retrying", num: true },
      { key: "done", label: "Done", num: true }, { key: "failed", label: "Failed", num: true },
      { key: "cancelled", label: "Cancelled", num: true },
    ], status.apps.map((a) => ({
      attrs: ` data-app="${esc(a.app)}"`,
      cells: {
        app: `<b>${esc(a.app)}</b>`, unsent: num(a.unsent), in_progress: num(a.in_progress),
        retrying: a.retrying ? `<a href="#/failures?state=retrying">${num(a.retrying)}</a>` : "0",
        done: num(a.done), failed: num(a.failed), cancelled: num(a.cancelled),
      },
    })), { id: "app-status" });
  const windowMs = status.hosts.reduce((m, h) => Math.max(m, h.window_ms), 0);
  const span = windowMs > 0 ? `over the last ${minutes(windowMs)}` : "from the next sample on";
  const hosts = status.hosts.length === 0 ? empty("No hosts yet", "No volunteer has joined.")
    : table([
      { key: "name", label: "Host" }, { key: "status", label: "Status" },
      { key: "results", label: "Results", num: true }, { key: "rate", label: "Results / h", num: true },
      { key: "credit", label: "Credit", num: true }, { key: "credit_rate", label: "Credit / h", num: true },
    ], status.hosts.map((h) => {
      const rate = perHour(h.results, h.window_ms);
      return {
        attrs: ` data-host="${h.id}"`,
        cells: {
          name: `<a href="#/host/${h.id}">${esc(h.name)}</a>`,
          status: h.online ? badge("online") : badge("offline"),
          results: num(h.results), rate: isFinite(rate) ? rate.toFixed(1) : "–",
          credit: credits(h.credit_fuel),
          credit_rate: isFinite(rate) ? credits(perHour(h.credit_fuel, h.window_ms)) : "–",
        },
      };
    }), { id: "host-rates" });
  return `<h1>Server status</h1>
    <h2>Units by app</h2>${apps}
    <h2>Hosts <small>results and credit ${esc(span)}</small></h2>${hosts}
    <p class="muted">One credit is 10<sup>9</sup> units of fuel (about a billion WebAssembly instructions) of validated results.</p>`;
}
