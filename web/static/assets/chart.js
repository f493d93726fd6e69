// chart.js — a small live line chart on a <canvas>, written for esp32gw's
// dashboard. No dependencies. A Series keeps (time, value) points of one
// numeric label for the last WINDOW_MS; drawSpark paints it.

/** How much history a chart shows (ms). */
export const WINDOW_MS = 10 * 60 * 1000;

/** The shortest span a chart shows (ms): a label that has just appeared is
 * drawn over this span rather than squeezed against the right edge. */
const MIN_SPAN_MS = 30 * 1000;

/** Points kept per series; older points are thinned beyond this so memory and
 * drawing cost stay bounded at 10 updates/s. */
const MAX_POINTS = 1200;

export class Series {
  constructor() {
    /** @type {number[]} */ this.t = []; // ms since epoch, ascending
    /** @type {number[]} */ this.v = [];
  }

  get length() { return this.t.length; }

  /** Adds one point; out-of-order points are inserted in place, a point with
   * the same time as an existing one replaces it. */
  add(t, v) {
    if (!Number.isFinite(t) || !Number.isFinite(v)) return;
    const n = this.t.length;
    if (n === 0 || t > this.t[n - 1]) {
      this.t.push(t);
      this.v.push(v);
    } else {
      let i = n - 1;
      while (i >= 0 && this.t[i] > t) i--;
      if (i >= 0 && this.t[i] === t) { this.v[i] = v; return; }
      this.t.splice(i + 1, 0, t);
      this.v.splice(i + 1, 0, v);
    }
    if (this.t.length > MAX_POINTS) this.thin();
  }

  /** Drops points older than the window (keeping one just before it so the
   * line enters from the left edge). */
  trim(now) {
    const from = now - WINDOW_MS;
    let i = 0;
    while (i + 1 < this.t.length && this.t[i + 1] < from) i++;
    if (i > 0) { this.t.splice(0, i); this.v.splice(0, i); }
  }

  /** Halves the density of the older two thirds of the points. */
  thin() {
    const cut = Math.floor(this.t.length * 2 / 3);
    const t = [], v = [];
    for (let i = 0; i < cut; i += 2) { t.push(this.t[i]); v.push(this.v[i]); }
    this.t = t.concat(this.t.slice(cut));
    this.v = v.concat(this.v.slice(cut));
  }

  /** Min and max of the points at or after from. */
  range(from) {
    let lo = Infinity, hi = -Infinity;
    for (let i = 0; i < this.t.length; i++) {
      if (this.t[i] < from && i + 1 < this.t.length && this.t[i + 1] < from) continue;
      const v = this.v[i];
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    return [lo, hi];
  }
}

/** Formats a number for axis labels and values: integers as they are, others
 * with at most 3 decimals. */
export function fmtNum(v) {
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e9 || a < 1e-3)) return v.toPrecision(4);
  return String(Number(v.toFixed(3)));
}

/** fmtSpan says how much time a chart spans: "45 s", "3 min". */
export function fmtSpan(ms) {
  return ms < 90 * 1000 ? `${Math.round(ms / 1000)} s` : `${Math.round(ms / 60000)} min`;
}

/** Colours are read from CSS custom properties so the chart follows the
 * light/dark theme. */
export function chartColors() {
  const s = getComputedStyle(document.documentElement);
  const get = (name, dflt) => (s.getPropertyValue(name).trim() || dflt);
  return {
    line: get('--chart-line', '#2563eb'),
    fill: get('--chart-fill', 'rgba(37,99,235,.15)'),
    text: get('--muted', '#666'),
    grid: get('--line', '#ddd'),
  };
}

/**
 * Paints series on canvas for the window ending at now: the last WINDOW_MS,
 * or less while the series is younger (but at least MIN_SPAN_MS). The canvas' CSS size
 * is given (cssW × cssH, from a ResizeObserver) so drawing never forces a
 * layout. Returns [min, max, span] of the visible points, or null when empty.
 */
export function drawSpark(canvas, series, now, cssW, cssH, colors) {
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(1, Math.round(cssW * dpr)), h = Math.max(1, Math.round(cssH * dpr));
  if (canvas.width !== w) canvas.width = w;
  if (canvas.height !== h) canvas.height = h;
  const ctx = canvas.getContext('2d');
  if (!ctx) return null;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, cssW, cssH);
  series.trim(now);
  const n = series.length;
  if (n === 0) return null;
  const span = Math.min(WINDOW_MS, Math.max(MIN_SPAN_MS, now - series.t[0]));
  const from = now - span;
  let [lo, hi] = series.range(from);
  if (!Number.isFinite(lo)) return null;
  const realLo = lo, realHi = hi;
  if (hi === lo) { const pad = Math.abs(hi) * 0.05 || 1; lo -= pad; hi += pad; }
  const padTop = 11, padBottom = 11; // room for the max/min text
  const plotH = Math.max(1, cssH - padTop - padBottom);
  const x = (t) => ((t - from) / span) * cssW;
  const y = (v) => padTop + (1 - (v - lo) / (hi - lo)) * plotH;

  // Baseline grid: top and bottom of the plot.
  ctx.strokeStyle = colors.grid;
  ctx.lineWidth = 1;
  ctx.beginPath();
  ctx.moveTo(0, padTop + 0.5); ctx.lineTo(cssW, padTop + 0.5);
  ctx.moveTo(0, padTop + plotH - 0.5); ctx.lineTo(cssW, padTop + plotH - 0.5);
  ctx.stroke();

  // Line, skipping points that fall on the same device pixel column.
  ctx.beginPath();
  let lastX = -Infinity, firstX = 0, started = false, px = 0;
  for (let i = 0; i < n; i++) {
    const xi = x(series.t[i]);
    if (started && xi - lastX < 1 / dpr && i !== n - 1) continue;
    const yi = y(series.v[i]);
    if (!started) { ctx.moveTo(xi, yi); firstX = xi; started = true; } else ctx.lineTo(xi, yi);
    lastX = xi; px = yi;
  }
  ctx.strokeStyle = colors.line;
  ctx.lineWidth = 1.5;
  ctx.lineJoin = 'round';
  ctx.stroke();
  // Area under the line.
  ctx.lineTo(lastX, padTop + plotH);
  ctx.lineTo(firstX, padTop + plotH);
  ctx.closePath();
  ctx.fillStyle = colors.fill;
  ctx.fill();
  // The latest point.
  ctx.fillStyle = colors.line;
  ctx.beginPath();
  ctx.arc(Math.min(lastX, cssW - 2), px, 2, 0, Math.PI * 2);
  ctx.fill();

  ctx.fillStyle = colors.text;
  ctx.font = '10px system-ui, sans-serif';
  ctx.textBaseline = 'top';
  ctx.fillText(fmtNum(realHi), 2, 0);
  ctx.textBaseline = 'bottom';
  ctx.fillText(fmtNum(realLo), 2, cssH);
  ctx.textAlign = 'right';
  ctx.fillText(fmtSpan(span), cssW - 2, cssH);
  ctx.textAlign = 'left';
  return [realLo, realHi, span];
}
