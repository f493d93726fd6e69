// charts.js — the dashboard's charts: which canvases are on screen and at
// what size, drawing them within a frame budget (chart.js paints), and
// seeding them from GET /api/devices/{id}/history.

import { chartColors, drawSpark, fmtNum, fmtSpan } from './chart.js';
import { state, dirty, hooks, schedule, numberOf, parseTS, display } from './model.js';
import { setAttr } from './dom.js';

const CHART_MIN_INTERVAL_MS = 400; // a chart is redrawn at most this often
const FRAME_BUDGET_MS = 8;         // chart drawing per frame; the rest waits for the next frame

let colors = null;

const resizer = new ResizeObserver((entries) => {
  for (const e of entries) {
    const lab = e.target._label;
    if (!lab) continue;
    const box = e.contentBoxSize && e.contentBoxSize[0];
    lab.size = box ? [box.inlineSize, box.blockSize] : [e.contentRect.width, e.contentRect.height];
    lab.chartAt = 0;
    dirty.charts.add(lab);
  }
  schedule();
});

const viewer = new IntersectionObserver((entries) => {
  for (const e of entries) {
    const lab = e.target._label;
    if (!lab) continue;
    lab.visible = e.isIntersecting;
    if (lab.visible) { dirty.charts.add(lab); schedule(); }
  }
});

/** observeChart starts tracking the size and visibility of lab's canvas. */
export function observeChart(lab, canvas) {
  canvas._label = lab;
  resizer.observe(canvas);
  viewer.observe(canvas);
}

/** unobserveChart stops tracking lab's canvas, if it has one. */
export function unobserveChart(lab) {
  if (!lab.canvas) return;
  resizer.unobserve(lab.canvas);
  viewer.unobserve(lab.canvas);
}

hooks.labelGone = unobserveChart;

/** drawCharts redraws the dirty charts that are on screen, within the frame budget. */
export function drawCharts() {
  if (!dirty.charts.size) return;
  colors = colors || chartColors();
  const start = performance.now();
  const now = Date.now();
  let again = false;
  for (const lab of dirty.charts) {
    if (!lab.canvas || !lab.series) { dirty.charts.delete(lab); continue; }
    if (!lab.visible || document.hidden) continue; // drawn when it scrolls into view
    const t = performance.now();
    if (t - lab.chartAt < CHART_MIN_INTERVAL_MS || t - start > FRAME_BUDGET_MS) { again = true; continue; }
    lab.chartAt = t;
    dirty.charts.delete(lab);
    const [w, hh] = lab.size;
    if (!w || !hh) continue;
    const rng = drawSpark(lab.canvas, lab.series, now, w, hh, colors);
    const desc = rng
      ? `${lab.name}, last ${fmtSpan(rng[2])}: now ${display(lab.value)}, min ${fmtNum(rng[0])}, max ${fmtNum(rng[1])}`
      : `${lab.name}: no data yet`;
    setAttr(lab.canvas, 'aria-label', desc);
  }
  if (again) {
    // Throttled charts: come back soon, without spinning every frame.
    setTimeout(schedule, 100);
  }
}

/** everyChart marks every chart for drawing (time moves them left). */
export function everyChart() {
  for (const dev of state.devices.values()) {
    for (const lab of dev.labels.values()) if (lab.kind === 'number') dirty.charts.add(lab);
  }
}

matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => {
  colors = null;
  for (const dev of state.devices.values()) for (const lab of dev.labels.values()) if (lab.kind === 'number') { lab.chartAt = 0; dirty.charts.add(lab); }
  schedule();
});

// ---------------------------------------------------------------- history (chart seeds)

let seeding = 0;
const seedQueue = [];

/** seedHistory fills the charts of devices not seeded yet (all: every
 * device again, after a snapshot that means events were missed). */
export function seedHistory(all) {
  for (const dev of state.devices.values()) {
    if ((dev.seeded && !all) || seedQueue.includes(dev)) continue;
    if (![...dev.labels.values()].some((l) => l.kind === 'number')) continue;
    dev.seeded = true;
    seedQueue.push(dev);
  }
  while (seeding < 4 && seedQueue.length) {
    seeding++;
    seedOne(seedQueue.shift()).finally(() => { seeding--; seedHistory(false); });
  }
}

async function seedOne(dev) {
  try {
    const r = await fetch(`/api/devices/${encodeURIComponent(dev.id)}/history`, { credentials: 'same-origin' });
    if (!r.ok) return;
    const body = await r.json();
    const labels = body && body.labels;
    if (!labels || typeof labels !== 'object') return;
    for (const [name, points] of Object.entries(labels)) {
      const lab = dev.labels.get(name);
      if (!lab || lab.kind !== 'number' || !Array.isArray(points)) continue;
      for (const p of points) {
        const n = numberOf(p && p.value);
        if (n !== null) lab.series.add(parseTS(p.ts), n);
      }
      dirty.charts.add(lab);
    }
    schedule();
  } catch { /* the live stream still fills the chart */ }
}
