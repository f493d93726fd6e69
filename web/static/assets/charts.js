// charts.js — the dashboard's charts, drawn by history.js: one history chart
// per label (range picker live … 1 y, drag to zoom, hover for values; a line
// or min/max band for numbers, a timeline of states for on/off and text
// labels) and, once opened, each device's online/offline timeline. This
// module mounts them into the cards render.js builds, feeds them the live
// events and status frames, and destroys them when their label or device
// leaves the page.
//
// Charts fetch GET /api/devices/{id}/history?label=L&from=…&max_points=N
// and …/availability themselves. A gateway without a history store answers
// those with 503; the live range then falls back to the recent readings the
// gateway keeps in memory (…/history?label=L, no from), so live charts still
// survive a reload.

import { mountLabelHistory, mountAvailability, fetchJSON, RANGES } from './history.js';
import { state, hooks, parseTS } from './model.js';

const LIVE = RANGES.find((r) => r.name === 'live');
const LIVE_FROM = `-${LIVE.ms / 60000}m`; // what history.js sends as the live range's from

let rangedHistory = true; // false once the gateway answered 503: it keeps no history store

/** historyFetch is history.js's fetchJSON, with the live range's fallback. */
async function historyFetch(url, opts) {
  const u = new URL(url, location.href);
  const live = u.pathname.endsWith('/history') && u.searchParams.get('from') === LIVE_FROM && !u.searchParams.has('to');
  if (!live) return fetchJSON(url, opts);
  if (rangedHistory) {
    try {
      return await fetchJSON(url, opts);
    } catch (e) {
      if (!/^503\b/.test(String(e && e.message))) throw e;
      rangedHistory = false;
    }
  }
  const label = u.searchParams.get('label') || '';
  const body = await fetchJSON(`${u.pathname}?label=${encodeURIComponent(label)}`, opts);
  const to = Date.now(), from = to - LIVE.ms;
  const points = [];
  for (const p of (body && Array.isArray(body.points) ? body.points : [])) {
    if (p && parseTS(p.ts) >= from) points.push({ ts: p.ts, value: p.value });
  }
  return { device: body && body.device, label, from: new Date(from).toISOString(), to: new Date(to).toISOString(), resolution: 'raw', points };
}

// ---------------------------------------------------------------- label charts

/** placeChart puts lab's history chart into its (new) row: the chart it
 * already has when its kind is unchanged (range and zoom stay), else a new one. */
export function placeChart(lab, row) {
  if (lab.hist && lab.histKind !== lab.kind) dropChart(lab);
  if (!lab.kind) return; // the gateway has not said yet; the row is rebuilt when it does
  if (lab.hist) {
    row.append(lab.hist.element);
    return;
  }
  lab.histKind = lab.kind;
  lab.hist = mountLabelHistory(row, {
    device: lab.dev.id, label: lab.name, kind: lab.kind, range: lab.range,
    liveWindow: LIVE.ms, fetchJSON: historyFetch,
    onRangeChange: (name) => { lab.range = name; },
  });
}

/** dropChart destroys lab's chart, if it has one. */
export function dropChart(lab) {
  if (!lab.hist) return;
  lab.hist.destroy();
  lab.hist = null;
  lab.histKind = '';
}

/** pointsOf is how many points lab's chart holds (0 without a chart). */
export function pointsOf(lab) { return lab && lab.hist ? lab.hist.points : 0; }

// ---------------------------------------------------------------- availability

/** toggleAvailability shows or hides dev's online/offline timeline in box;
 * it is mounted the first time it is shown. */
export function toggleAvailability(dev, box, open) {
  box.hidden = !open;
  if (open && !dev.avail) dev.avail = mountAvailability(box, { device: dev.id, fetchJSON: historyFetch });
}

/** dropAvailability destroys dev's timeline, if it has one. */
export function dropAvailability(dev) {
  if (!dev.avail) return;
  dev.avail.destroy();
  dev.avail = null;
}

// ---------------------------------------------------------------- live data

hooks.labelGone = dropChart;
hooks.reading = (lab, ts, value) => { if (lab && lab.hist) lab.hist.addLive(ts, value); };
hooks.status = (dev, ts, online, reason) => { if (dev.avail) dev.avail.addStatus(ts || undefined, online, reason); };

/** refreshCharts fetches every chart's range again: after a snapshot that
 * means live events were missed (the gateway restarted, or we were away too long). */
export function refreshCharts() {
  for (const dev of state.devices.values()) {
    if (dev.avail) dev.avail.refresh();
    for (const lab of dev.labels.values()) if (lab.hist) lab.hist.refresh();
  }
}
