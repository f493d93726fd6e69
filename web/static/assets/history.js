// history.js — ranged history charts for esp32gw's dashboard. No
// dependencies, canvas drawing, works offline.
//
//   mountLabelHistory(container, {device, label, kind, fetchJSON, …}) — one
//     label: a range picker (live, 1 h, 24 h, 7 d, 30 d, 1 y); numbers as a
//     line, or a min/max band with the mean line when the gateway answers in
//     buckets; on/off and text labels as a timeline of their states. Drag
//     across the chart to zoom (the sub-range is fetched at a finer
//     resolution), double-click or "Reset zoom" to go back; hover (or tap)
//     for the exact value and time.
//   mountAvailability(container, {device, fetchJSON, …}) — the device's
//     online/offline timeline, the reason on hover.
//
// Both fetch GET /api/devices/{id}/history (or …/availability) with
// max_points about the chart's width in CSS pixels and never more than
// MAX_POINTS; colours come from CSS custom properties (style.css and
// history.css), so the charts follow the light/dark theme. Values from
// boards only ever reach the page as text (textContent, fillText).

const SEC = 1000, MIN = 60 * SEC, HOUR = 60 * MIN, DAY = 24 * HOUR;

/** The ranges a picker offers; `from` is sent as the history API's from. */
export const RANGES = Object.freeze([
  Object.freeze({ name: 'live', label: 'Live', from: '-10m', ms: 10 * MIN }),
  Object.freeze({ name: '1h', label: '1 h', from: '-1h', ms: HOUR }),
  Object.freeze({ name: '24h', label: '24 h', from: '-24h', ms: DAY }),
  Object.freeze({ name: '7d', label: '7 d', from: '-7d', ms: 7 * DAY }),
  Object.freeze({ name: '30d', label: '30 d', from: '-30d', ms: 30 * DAY }),
  Object.freeze({ name: '1y', label: '1 y', from: '-1y', ms: 365 * DAY }),
]);

/** The most points one fetch asks for, whatever the chart's width. */
export const MAX_POINTS = 1000;
const MIN_POINTS = 60;
/** Points a live chart keeps; older ones are thinned beyond this. */
const LIVE_KEEP = 3000;
/** A drag narrower than this (CSS px) is a click, not a zoom. */
const DRAG_PX = 8;
/** The narrowest range a zoom fetches. */
const MIN_ZOOM_MS = 2 * SEC;
/** Live readings redraw a chart at most this often (the window slides every second anyway). */
const LIVE_DRAW_MS = 250;

const ON_WORDS = new Set(['on', 'true', 'high', 'yes', 'open', 'enabled', 'active']);
const OFF_WORDS = new Set(['off', 'false', 'low', 'no', 'closed', 'disabled', 'inactive']);

// ---------------------------------------------------------------- values and formats

/** stateOf says whether a value means on (true), off (false) or neither
 * (null): booleans, numbers (0 is off), "on", "LED OFF", "1", "closed", … */
export function stateOf(v) {
  if (typeof v === 'boolean') return v;
  if (typeof v === 'number') return Number.isFinite(v) ? v !== 0 : null;
  if (typeof v !== 'string') return null;
  const words = v.trim().toLowerCase().split(/[\s:=_-]+/);
  const w = words[words.length - 1];
  if (ON_WORDS.has(w) || w === '1') return true;
  if (OFF_WORDS.has(w) || w === '0') return false;
  return null;
}

function numeric(v) {
  if (typeof v === 'number') return Number.isFinite(v) ? v : null;
  if (typeof v === 'string' && /^\s*-?\d+(\.\d+)?([eE][-+]?\d+)?\s*$/.test(v)) return Number(v);
  return null;
}

/** Milliseconds since the epoch from a number (ms), a Date or an RFC 3339 string. */
function toMS(ts) {
  if (typeof ts === 'number') return ts;
  if (ts instanceof Date) return ts.getTime();
  if (typeof ts === 'string') return /^\d+$/.test(ts) ? Number(ts) : Date.parse(ts);
  return NaN;
}

const UNIT_MS = { ms: 1, s: SEC, m: MIN, h: HOUR, d: DAY, y: 365 * DAY };

/** parseDuration reads "10s", "1m", "1h30m", "500ms", "1d"; 0 when it cannot. */
export function parseDuration(s) {
  if (typeof s !== 'string') return 0;
  let total = 0, rest = s.trim();
  const re = /^(\d+(?:\.\d+)?)(ms|s|m|h|d|y)/;
  if (!rest) return 0;
  while (rest) {
    const m = re.exec(rest);
    if (!m) return 0;
    total += Number(m[1]) * UNIT_MS[m[2]];
    rest = rest.slice(m[0].length);
  }
  return total;
}

function fmtNum(v) {
  if (!Number.isFinite(v)) return String(v);
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  if (a >= 1e9 || a < 1e-3) return v.toPrecision(4);
  return String(Number(v.toFixed(3)));
}

/** fmtDur says how long a span is: "45 s", "12 min", "2 h 5 min", "3 d 4 h". */
function fmtDur(ms) {
  if (!(ms >= 0)) return '';
  if (ms < MIN) return `${Math.round(ms / SEC)} s`;
  if (ms < HOUR) return `${Math.round(ms / MIN)} min`;
  if (ms < DAY) {
    const h = Math.floor(ms / HOUR), m = Math.round((ms % HOUR) / MIN);
    return m ? `${h} h ${m} min` : `${h} h`;
  }
  const d = Math.floor(ms / DAY), h = Math.round((ms % DAY) / HOUR);
  return h ? `${d} d ${h} h` : `${d} d`;
}

function fmtRes(res) {
  if (res === 'raw') return 'raw readings';
  if (res === 'changes') return 'changes';
  const ms = parseDuration(res);
  return ms ? `${fmtDur(ms)} buckets` : res;
}

/** display shows any JSON value as short text. */
function display(v) {
  if (v === undefined) return '—';
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return fmtNum(v);
  const s = JSON.stringify(v);
  return s.length > 200 ? s.slice(0, 199) + '…' : s;
}

let FMT = null;
function fmts() {
  if (FMT) return FMT;
  const f = (o) => new Intl.DateTimeFormat(undefined, o);
  FMT = {
    hm: f({ hour: '2-digit', minute: '2-digit' }),
    hms: f({ hour: '2-digit', minute: '2-digit', second: '2-digit' }),
    md: f({ month: 'short', day: 'numeric' }),
    mon: f({ month: 'short' }),
    year: f({ year: 'numeric' }),
    full: f({ weekday: 'short', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' }),
    fullMS: f({ weekday: 'short', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit', fractionalSecondDigits: 3 }),
  };
  return FMT;
}

/** fmtTime is a point's time for a tooltip, with milliseconds when it has them. */
function fmtTime(t) {
  return (t % 1000 ? fmts().fullMS : fmts().full).format(t);
}

/** fmtSpanOf is "Tue, Mar 3, 10:00:00 – 10:10:00" (the end's date only when it differs). */
function fmtSpanOf(t0, t1, open) {
  const a = fmts().full.format(t0);
  if (open) return `${a} – now`;
  const sameDay = new Date(t0).toDateString() === new Date(t1).toDateString();
  return `${a} – ${sameDay ? fmts().hms.format(t1) : fmts().full.format(t1)}`;
}

// ---------------------------------------------------------------- axes

const TICK_STEPS = [SEC, 2 * SEC, 5 * SEC, 10 * SEC, 15 * SEC, 30 * SEC, MIN, 2 * MIN, 5 * MIN, 10 * MIN,
  15 * MIN, 30 * MIN, HOUR, 2 * HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 2 * DAY, 7 * DAY, 14 * DAY];

/** timeTicks places at most maxTicks ticks between a and b on round local times. */
function timeTicks(a, b, maxTicks) {
  const span = b - a, ticks = [];
  if (!(span > 0) || maxTicks < 1) return { ticks, step: 0 };
  let step = TICK_STEPS.find((s) => span / s <= maxTicks);
  if (step !== undefined && step < DAY) {
    const z = -new Date(a).getTimezoneOffset() * MIN; // local wall clock = t + z
    for (let t = Math.ceil((a + z) / step) * step - z; t <= b && ticks.length < 100; t += step) ticks.push(t);
  } else if (step !== undefined) {
    const d = new Date(a);
    d.setHours(0, 0, 0, 0);
    if (d.getTime() < a) d.setDate(d.getDate() + 1);
    for (; d.getTime() <= b && ticks.length < 100; d.setDate(d.getDate() + step / DAY)) ticks.push(d.getTime());
  } else {
    const months = [1, 2, 3, 6, 12, 24, 60].find((m) => span / (m * 30 * DAY) <= maxTicks) || 120;
    const d = new Date(a);
    d.setHours(0, 0, 0, 0);
    d.setDate(1);
    if (d.getTime() < a) d.setMonth(d.getMonth() + 1);
    if (months <= 12) while (d.getMonth() % months) d.setMonth(d.getMonth() + 1);
    for (; d.getTime() <= b && ticks.length < 100; d.setMonth(d.getMonth() + months)) ticks.push(d.getTime());
    step = months * 30 * DAY;
  }
  return { ticks, step };
}

function tickLabel(t, step) {
  const f = fmts(), d = new Date(t);
  if (step < MIN) return f.hms.format(t);
  if (step < DAY) return d.getHours() === 0 && d.getMinutes() === 0 ? f.md.format(t) : f.hm.format(t);
  if (step < 28 * DAY) return f.md.format(t);
  return d.getMonth() === 0 ? f.year.format(t) : f.mon.format(t);
}

/** niceTicks gives round values covering lo..hi, about n of them. */
function niceTicks(lo, hi, n) {
  const raw = (hi - lo) / Math.max(1, n);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  const step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
  const ticks = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9 && ticks.length < 50; v += step) ticks.push(v);
  const dec = Math.max(0, Math.min(10, -Math.floor(Math.log10(step) + 1e-9)));
  return { ticks, fmt: (v) => (Math.abs(v) < step / 2 ? 0 : v).toFixed(dec) };
}

// ---------------------------------------------------------------- colours

const COLOR_VARS = {
  text: ['--text', '#16181d'], muted: ['--muted', '#5b6270'], grid: ['--line', '#dde1e7'],
  card: ['--card', '#ffffff'], line: ['--chart-line', '#2563eb'], fill: ['--chart-fill', 'rgba(37,99,235,.14)'],
  select: ['--hist-select', 'rgba(245,158,11,.22)'], on: ['--hist-on', '#15803d'], off: ['--hist-off', '#cbd5e1'],
  online: ['--hist-online', '#15803d'], offline: ['--hist-offline', '#b91c1c'],
  c1: ['--hist-c1', '#93c5fd'], c2: ['--hist-c2', '#fcd34d'], c3: ['--hist-c3', '#86efac'],
  c4: ['--hist-c4', '#f9a8d4'], c5: ['--hist-c5', '#c4b5fd'], c6: ['--hist-c6', '#5eead4'],
};

function readColors(el) {
  const s = getComputedStyle(el);
  const c = {};
  for (const [k, [name, dflt]] of Object.entries(COLOR_VARS)) c[k] = s.getPropertyValue(name).trim() || dflt;
  c.palette = [c.c1, c.c2, c.c3, c.c4, c.c5, c.c6];
  return c;
}

/** inkOn picks dark or light text for a background colour. */
function inkOn(ctx, bg, colors) {
  ctx.fillStyle = '#000';
  ctx.fillStyle = bg;
  const s = String(ctx.fillStyle);
  let r, g, b;
  if (s[0] === '#') [r, g, b] = [1, 3, 5].map((i) => parseInt(s.slice(i, i + 2), 16));
  else {
    const m = /rgba?\(\s*([\d.]+)\D+([\d.]+)\D+([\d.]+)/.exec(s);
    if (!m) return colors.text;
    [r, g, b] = [m[1], m[2], m[3]].map(Number);
  }
  const lum = (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255;
  return lum > 0.55 ? '#111318' : '#f8fafc';
}

function fitText(ctx, s, maxW) {
  if (maxW < 14) return '';
  if (ctx.measureText(s).width <= maxW) return s;
  let lo = 0, hi = s.length;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (ctx.measureText(s.slice(0, mid) + '…').width <= maxW) lo = mid; else hi = mid - 1;
  }
  return lo >= 2 ? s.slice(0, lo) + '…' : '';
}

// ---------------------------------------------------------------- DOM

function h(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === false || v == null) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  e.append(...kids);
  return e;
}

/** fetchJSON is the default fetcher: same-origin cookies, and an Error that
 * carries the gateway's {"error": …} text for answers other than 2xx. */
export async function fetchJSON(url, { signal } = {}) {
  const r = await fetch(url, { credentials: 'same-origin', cache: 'no-store', signal, headers: { Accept: 'application/json' } });
  let body = null;
  try { body = await r.json(); } catch { /* not JSON */ }
  if (!r.ok) throw new Error(`${r.status} ${(body && body.error) || r.statusText || 'error'}`.trim());
  return body;
}

function normKind(k) {
  if (k === 'onoff' || k === 'bool') return 'onoff';
  if (k === 'text') return 'text';
  return 'number';
}

const darkQuery = typeof matchMedia === 'function' ? matchMedia('(prefers-color-scheme: dark)') : null;

// ---------------------------------------------------------------- the chart

class HistoryChart {
  /**
   * mode: 'number' | 'timeline' | 'availability'.
   */
  constructor(container, o, mode) {
    if (!container || typeof container.append !== 'function') throw new TypeError('history: container must be an element');
    if (!o || typeof o.device !== 'string' || !o.device) throw new TypeError('history: device is required');
    if (mode !== 'availability' && (typeof o.label !== 'string' || !o.label)) throw new TypeError('history: label is required');
    this.mode = mode;
    this.kind = mode === 'availability' ? 'availability' : normKind(o.kind);
    this.device = o.device;
    this.label = o.label || '';
    this.fetcher = typeof o.fetchJSON === 'function' ? o.fetchJSON : fetchJSON;
    this.now = typeof o.now === 'function' ? o.now : Date.now;
    this.base = String(o.base || '').replace(/\/$/, '');
    this.onRangeChange = typeof o.onRangeChange === 'function' ? o.onRangeChange : null;
    this.liveMS = o.liveWindow > 0 ? o.liveWindow : RANGES[0].ms;
    let names = Array.isArray(o.ranges) ? o.ranges : RANGES.map((r) => r.name);
    if (mode === 'availability' && !Array.isArray(o.ranges)) names = names.filter((n) => n !== 'live');
    this.ranges = RANGES.filter((r) => names.includes(r.name));
    if (!this.ranges.length) this.ranges = RANGES.slice();
    const want = o.range || (mode === 'availability' ? '24h' : 'live');
    this.range = this.rangeDef(want) ? want : this.ranges[0].name;

    this.seq = 0;           // fetch generation; late answers are dropped
    this.ctrl = null;       // AbortController of the fetch in flight
    this.pending = true;    // a fetch is due once the chart is sized and on screen
    this.loading = false;
    this.state = 'loading';
    this.zoom = null;       // [from, to] ms while zoomed
    this.res = '';          // the answer's resolution
    this.resMS = 0;
    this.pts = [];          // number: {t0,t1,x,v,lo,hi,last,n,b}; timeline: {t0,t1,value,st,frac,b}
    this.ivs = [];          // availability: {from,to|null,online,reason}
    this.ans = null;        // [from, to] ms of the last answer
    this.gap = Infinity;    // a step wider than this breaks the line
    this.dom = [0, 1];
    this.w = 0; this.h = 0; this.visible = false;
    this.press = null; this.drag = null; this.hover = null;
    this.colors = null; this.frame = 0; this.timer = 0; this.dead = false;
    this.liveTimer = 0; this.liveAt = 0; // live redraws: throttled, only on screen
    this.segs = [];         // timeline segments as drawn, for hover
    this.skew = 0;          // gateway clock − local clock (ms)
    this.colorOf = new Map(); // text timeline: value → palette index, stable while mounted
    this.area = { l: 0, r: 1, t: 0, b: 1 };

    this.build(container, o.picker !== false);
    this.listen();
  }

  rangeDef(name) { return this.ranges.find((r) => r.name === name); }

  /** clock is the gateway's time as best known: the local clock corrected by
   * how far it was from the gateway's "to" in the last unzoomed answer. */
  clock() { return this.now() + this.skew; }

  build(container, picker) {
    const name = this.mode === 'availability' ? `${this.device} availability` : `${this.label} history`;
    this.buttons = this.ranges.map((r) => h('button', {
      type: 'button', class: 'hist-range', 'data-range': r.name, 'aria-pressed': 'false',
      title: r.name === 'live' ? 'Live: the last minutes' : `The last ${r.label}`,
    }, r.label));
    this.group = h('div', { class: 'hist-ranges', role: 'group', 'aria-label': `Range of ${name}`, hidden: !picker }, ...this.buttons);
    this.resEl = h('span', { class: 'hist-res' });
    this.resetBtn = h('button', { type: 'button', class: 'hist-reset', hidden: true, title: 'Back to the whole range (or double-click the chart)' }, 'Reset zoom');
    this.canvas = h('canvas', { role: 'img', 'aria-label': `${name}: loading` });
    this.msg = h('div', { class: 'hist-msg' });
    this.plot = h('div', { class: 'hist-plot' }, this.canvas, this.msg, this.resetBtn);
    this.root = h('div', { class: `hist hist-${this.mode === 'number' ? 'number' : this.mode}`, 'data-kind': this.kind },
      h('div', { class: 'hist-bar' }, this.group, this.resEl), this.plot);
    this.tip = null;
    this.name = name;
    this.markRange();
    container.append(this.root);
  }

  listen() {
    const on = (t, ev, fn, opt) => { t.addEventListener(ev, fn, opt); this.offs.push(() => t.removeEventListener(ev, fn, opt)); };
    this.offs = [];
    on(this.group, 'click', (e) => {
      const b = e.target.closest('button[data-range]');
      if (!b) return;
      this.setRange(b.dataset.range);
      if (this.onRangeChange) this.onRangeChange(this.range);
    });
    on(this.resetBtn, 'click', () => this.resetZoom());
    const c = this.canvas;
    on(c, 'pointerdown', (e) => this.onDown(e));
    on(c, 'pointermove', (e) => this.onMove(e));
    on(c, 'pointerup', (e) => this.onUp(e));
    on(c, 'pointercancel', () => { this.press = null; this.drag = null; this.queue(); });
    on(c, 'pointerleave', (e) => { if (e.pointerType === 'mouse' && !this.press) { this.hover = null; this.hideTip(); this.queue(); } });
    on(c, 'dblclick', (e) => { e.preventDefault(); if (this.zoom) this.resetZoom(); });
    on(c, 'contextmenu', (e) => { if (this.drag) e.preventDefault(); });
    // A tap elsewhere or any scroll hides a tooltip that a tap opened.
    on(document, 'pointerdown', (e) => { if (e.target !== c && this.hover) { this.hover = null; this.hideTip(); this.queue(); } }, true);
    on(window, 'scroll', () => { if (this.hover && !this.press) { this.hover = null; this.hideTip(); this.queue(); } }, { capture: true, passive: true });
    on(document, 'visibilitychange', () => { this.ticker(); if (!document.hidden) this.queue(); });
    if (darkQuery) on(darkQuery, 'change', () => this.redraw());

    this.ro = new ResizeObserver((entries) => {
      const r = entries[entries.length - 1].contentRect;
      this.w = r.width; this.h = r.height;
      if (this.pending) this.load(); else this.queue();
    });
    this.ro.observe(this.plot);
    this.io = new IntersectionObserver((entries) => {
      this.visible = entries[entries.length - 1].isIntersecting;
      this.ticker();
      if (this.visible && this.pending) this.load(); else if (this.visible) this.queue();
    }, { rootMargin: '200px' });
    this.io.observe(this.root);
    // A theme switched by a class or data-theme on <html> or <body>.
    this.mo = new MutationObserver(() => this.redraw());
    this.mo.observe(document.documentElement, { attributes: true, attributeFilter: ['class', 'data-theme'] });
    if (document.body) this.mo.observe(document.body, { attributes: true, attributeFilter: ['class', 'data-theme'] });
  }

  // ---------------------------------------------------------------- state and fetching

  isLive() { return this.range === 'live' && !this.zoom; }

  markRange() {
    for (const b of this.buttons) b.setAttribute('aria-pressed', String(b.dataset.range === this.range));
    this.root.dataset.range = this.range;
  }

  setRange(name) {
    if (this.dead || !this.rangeDef(name)) return;
    const same = name === this.range && !this.zoom;
    this.range = name;
    this.zoom = null;
    this.resetBtn.hidden = true;
    delete this.root.dataset.zoomed;
    this.markRange();
    this.ticker();
    if (same && this.state !== 'error') return;
    this.pts = []; this.ivs = []; this.ans = null; this.res = '';
    this.load();
  }

  resetZoom() {
    if (this.dead || !this.zoom) return;
    this.zoom = null;
    this.resetBtn.hidden = true;
    delete this.root.dataset.zoomed;
    this.ticker();
    this.load();
  }

  zoomTo(from, to) {
    from = toMS(from); to = toMS(to);
    if (this.dead || !(to - from >= MIN_ZOOM_MS)) return;
    this.zoom = [from, to];
    this.resetBtn.hidden = false;
    this.root.dataset.zoomed = 'true';
    this.ticker();
    this.queue(); // the current data in the new range at once; finer data follows
    this.load();
  }

  maxPoints() {
    const w = Math.round(this.area.r - this.area.l > 1 ? this.area.r - this.area.l : this.w);
    return Math.max(MIN_POINTS, Math.min(MAX_POINTS, w || 600));
  }

  url() {
    const q = new URLSearchParams();
    if (this.mode !== 'availability') q.set('label', this.label);
    if (this.zoom) {
      q.set('from', String(Math.floor(this.zoom[0])));
      q.set('to', String(Math.ceil(this.zoom[1])));
    } else {
      const r = this.rangeDef(this.range);
      const live = this.liveMS % MIN ? `-${Math.round(this.liveMS / SEC)}s` : `-${this.liveMS / MIN}m`;
      q.set('from', this.range === 'live' ? live : r.from);
    }
    if (this.mode !== 'availability') q.set('max_points', String(this.maxPoints()));
    const path = this.mode === 'availability' ? 'availability' : 'history';
    return `${this.base}/api/devices/${encodeURIComponent(this.device)}/${path}?${q}`;
  }

  load() {
    if (this.dead) return;
    if (!(this.w > 0) || !this.visible) { this.pending = true; return; }
    this.pending = false;
    const seq = ++this.seq;
    if (this.ctrl) this.ctrl.abort();
    const ctrl = typeof AbortController === 'function' ? new AbortController() : null;
    this.ctrl = ctrl;
    this.loading = true;
    if (!this.hasData()) this.setState('loading', 'Loading…');
    this.showRes();
    const url = this.url();
    Promise.resolve().then(() => this.fetcher(url, { signal: ctrl && ctrl.signal })).then((ans) => {
      if (seq !== this.seq || this.dead) return;
      this.loading = false; this.ctrl = null;
      this.accept(ans);
    }, (err) => {
      if (seq !== this.seq || this.dead) return;
      this.loading = false; this.ctrl = null;
      if (err && err.name === 'AbortError') return;
      this.pts = []; this.ivs = [];
      const m = String((err && err.message) || err || 'error').slice(0, 160);
      this.setState('error', `Could not load history: ${m}`);
      this.showRes();
      this.queue();
    });
  }

  hasData() { return this.mode === 'availability' ? this.ivs.length > 0 : this.pts.length > 0; }

  setState(st, text) {
    this.state = st;
    this.root.dataset.state = st;
    this.msg.textContent = text || '';
    this.msg.hidden = !text;
  }

  showRes() {
    let s = '';
    if (this.loading && this.hasData()) s = 'loading…';
    else if (this.isLive()) s = 'live';
    else if (this.res) s = fmtRes(this.res);
    this.resEl.textContent = s;
    this.root.dataset.resolution = this.res;
    // Shown data stays while a new range loads; data-loading tells a page
    // (and a test) that what is drawn is not yet the asked-for range.
    if (this.loading) this.root.dataset.loading = 'true';
    else delete this.root.dataset.loading;
  }

  accept(ans) {
    const now = this.clock();
    if (this.mode === 'availability') {
      if (!ans || !Array.isArray(ans.intervals)) return this.bad();
      this.ivs = [];
      for (const iv of ans.intervals) {
        const from = toMS(iv && iv.from);
        if (!Number.isFinite(from)) continue;
        const to = iv.to == null ? null : toMS(iv.to);
        this.ivs.push({ from, to: Number.isFinite(to) ? to : null, online: !!iv.online, reason: typeof iv.reason === 'string' ? iv.reason : '' });
      }
      this.ivs.sort((a, b) => a.from - b.from);
      const r = this.rangeDef(this.range);
      this.ans = this.zoom ? this.zoom.slice() : [now - r.ms, now];
      this.res = '';
    } else {
      if (!ans || !Array.isArray(ans.points)) return this.bad();
      this.res = typeof ans.resolution === 'string' ? ans.resolution : 'raw';
      this.resMS = this.res === 'raw' || this.res === 'changes' ? 0 : parseDuration(this.res);
      const pts = this.mode === 'number' ? this.numberPoints(ans.points) : this.timelinePoints(ans.points);
      const f = toMS(ans.from), t = toMS(ans.to);
      if (!this.zoom && Number.isFinite(t)) this.skew = t - this.now();
      const r = this.rangeDef(this.range);
      this.ans = Number.isFinite(f) && Number.isFinite(t) && t > f ? [f, t]
        : this.zoom ? this.zoom.slice() : [now - r.ms, now];
      if (this.isLive()) {
        // Live points that arrived while the fetch was out stay.
        const last = pts.length ? pts[pts.length - 1].t0 : -Infinity;
        this.pts = pts.concat(this.pts.filter((p) => p.t0 > last && !p.b));
      } else this.pts = pts;
      this.gapOf();
    }
    if (this.hasData()) this.setState('ready');
    else this.setState('empty', this.isLive() ? 'No readings in the last minutes yet' : 'No data in this range');
    this.showRes();
    this.describe();
    this.queue();
  }

  bad() {
    this.pts = []; this.ivs = [];
    this.setState('error', 'Could not load history: unexpected answer from the gateway');
    this.showRes();
    this.queue();
  }

  numberPoints(raw) {
    const out = [];
    let res = this.resMS;
    if (!res && this.res !== 'raw' && raw.length > 1) { // an unknown width: from the spacing
      const a = toMS(raw[0].ts), b = toMS(raw[raw.length - 1].ts);
      res = (b - a) / (raw.length - 1) || 0;
    }
    for (const p of raw) {
      if (!p) continue;
      const t = toMS(p.ts);
      if (!Number.isFinite(t)) continue;
      if ('mean' in p || 'min' in p) {
        const v = numeric(p.mean), lo = numeric(p.min), hi = numeric(p.max);
        if (v === null || lo === null || hi === null) continue;
        out.push({ t0: t, t1: t + res, x: t + res / 2, v, lo, hi, last: numeric(p.last), n: Number(p.count) || 0, b: true });
      } else {
        const v = numeric(p.value);
        if (v === null) continue;
        out.push({ t0: t, t1: t, x: t, v, lo: v, hi: v, b: false });
      }
    }
    out.sort((a, b) => a.t0 - b.t0);
    return out;
  }

  timelinePoints(raw) {
    const out = [];
    for (const p of raw) {
      if (!p) continue;
      const t = toMS(p.ts);
      if (!Number.isFinite(t)) continue;
      if ('mean' in p || 'last' in p) { // a numeric label shown as a timeline: buckets
        const value = numeric(p.last);
        const frac = this.kind === 'onoff' ? Math.max(0, Math.min(1, Number(p.mean))) : null;
        out.push({ t0: t, t1: t + this.resMS, value, st: stateOf(value), frac, min: p.min, max: p.max, b: true });
      } else out.push({ t0: t, t1: t, value: p.value, st: stateOf(p.value), frac: null, b: false });
    }
    out.sort((a, b) => a.t0 - b.t0);
    return out;
  }

  /** gapOf sets how wide a step must be to break the line: a missing bucket,
   * or for raw readings ten times their usual spacing. */
  gapOf() {
    if (this.mode !== 'number' || this.pts.length < 3) { this.gap = Infinity; return; }
    const d = [];
    for (let i = 1; i < this.pts.length; i++) d.push(this.pts[i].x - this.pts[i - 1].x);
    d.sort((a, b) => a - b);
    const med = d[d.length >> 1];
    const span = this.ans ? this.ans[1] - this.ans[0] : 0;
    this.gap = this.pts[0].b ? Math.max(2.5 * this.resMS, 3 * med) : Math.max(10 * med, span / 50);
  }

  /** addLive takes one reading from the live stream. */
  addLive(ts, value) {
    if (this.dead || this.mode === 'availability') return;
    const t = ts == null ? this.clock() : toMS(ts);
    if (!Number.isFinite(t)) return;
    if (this.zoom) return;                                  // a zoomed view is a fixed range
    if (!this.isLive() && this.res && this.res !== 'raw' && this.res !== 'changes') return; // buckets: next fetch
    let p;
    if (this.mode === 'number') {
      const v = numeric(value);
      if (v === null) return;
      p = { t0: t, t1: t, x: t, v, lo: v, hi: v, b: false };
    } else {
      p = { t0: t, t1: t, value, st: stateOf(value), frac: null, b: false };
    }
    const pts = this.pts;
    let i = pts.length;
    while (i > 0 && pts[i - 1].t0 > t) i--;
    if (i > 0 && pts[i - 1].t0 === t && !pts[i - 1].b) pts[i - 1] = p; else pts.splice(i, 0, p);
    if (this.isLive()) this.trimLive();
    else if (this.ans && t > this.ans[1]) this.ans[1] = t;
    if (this.state !== 'ready') this.setState('ready');
    if (this.pts.length === 3 || this.pts.length % 100 === 0) this.gapOf();
    this.queueLive();
  }

  /** queueLive redraws after live readings: only while on screen (coming
   * into view draws anyway) and at most every LIVE_DRAW_MS, so a page with
   * hundreds of labels at 10 readings a second stays light. */
  queueLive() {
    if (this.dead || !this.visible || document.hidden || this.liveTimer) return;
    const wait = this.liveAt + LIVE_DRAW_MS - performance.now();
    const go = () => { this.liveTimer = 0; this.liveAt = performance.now(); this.describe(); this.queue(); };
    if (wait <= 0) go(); else this.liveTimer = setTimeout(go, wait);
  }

  trimLive() {
    const from = this.clock() - this.liveMS;
    let i = 0;
    while (i + 1 < this.pts.length && this.pts[i + 1].t1 < from) i++;
    if (i > 0) this.pts.splice(0, i);
    if (this.pts.length > LIVE_KEEP && this.mode !== 'number') this.pts.splice(0, this.pts.length - LIVE_KEEP);
    if (this.pts.length > LIVE_KEEP) { // halve the older half
      const half = this.pts.length >> 1;
      const old = this.pts.slice(0, half).filter((_, k) => k % 2 === 0);
      this.pts = old.concat(this.pts.slice(half));
    }
  }

  /** addStatus takes a status change (availability charts). */
  addStatus(ts, online, reason) {
    if (this.dead || this.mode !== 'availability' || this.zoom) return;
    const t = ts == null ? this.clock() : toMS(ts);
    if (!Number.isFinite(t)) return;
    const last = this.ivs[this.ivs.length - 1];
    if (last && last.to === null) {
      if (last.online === !!online) return;
      last.to = t;
    }
    this.ivs.push({ from: t, to: null, online: !!online, reason: reason ? String(reason) : '' });
    if (this.state !== 'ready') this.setState('ready');
    this.queue();
  }

  describe() {
    const r = this.zoom ? 'zoomed range' : this.range === 'live' ? 'live' : `last ${this.rangeDef(this.range).label}`;
    let s = `${this.name}, ${r}: `;
    if (!this.hasData()) s += 'no data';
    else if (this.mode === 'number') {
      let lo = Infinity, hi = -Infinity;
      for (const p of this.pts) { if (p.lo < lo) lo = p.lo; if (p.hi > hi) hi = p.hi; }
      s += `${this.pts.length} points (${fmtRes(this.res || 'raw')}), min ${fmtNum(lo)}, max ${fmtNum(hi)}, last ${fmtNum(this.pts[this.pts.length - 1].v)}`;
    } else if (this.mode === 'timeline') {
      s += `${this.pts.length} changes, last ${display(this.pts[this.pts.length - 1].value)}`;
    } else {
      const off = this.ivs.filter((i) => !i.online).length;
      s += `${off} offline periods, now ${this.ivs[this.ivs.length - 1].online ? 'online' : 'offline'}`;
    }
    this.canvas.setAttribute('aria-label', s);
  }

  // ---------------------------------------------------------------- drawing

  redraw() { this.colors = null; this.queue(); }

  queue() {
    if (this.dead || this.frame) return;
    this.frame = requestAnimationFrame(() => { this.frame = 0; this.draw(); });
  }

  /** ticker slides a live chart's window while it is on screen. */
  ticker() {
    const want = !this.dead && this.range === 'live' && !this.zoom && this.visible && !document.hidden;
    if (want && !this.timer) this.timer = setInterval(() => this.queue(), 1000);
    else if (!want && this.timer) { clearInterval(this.timer); this.timer = 0; }
  }

  domain() {
    const now = this.clock();
    if (this.zoom) return this.zoom;
    if (this.isLive()) {
      const last = this.pts.length ? this.pts[this.pts.length - 1].t1 : now;
      const end = Math.max(now, last);
      return [end - this.liveMS, end];
    }
    if (this.ans) return this.ans;
    const r = this.rangeDef(this.range);
    return [now - r.ms, now];
  }

  draw() {
    if (this.dead || !(this.w > 0) || !(this.h > 0)) return;
    const dpr = window.devicePixelRatio || 1;
    const W = Math.max(1, Math.round(this.w * dpr)), H = Math.max(1, Math.round(this.h * dpr));
    if (this.canvas.width !== W) this.canvas.width = W;
    if (this.canvas.height !== H) this.canvas.height = H;
    const ctx = this.canvas.getContext('2d');
    if (!ctx) return;
    if (!this.colors) this.colors = readColors(this.root);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, this.w, this.h);
    ctx.font = '10px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';
    this.dom = this.domain();
    if (this.isLive()) this.trimLive();
    let tip = null;
    if (this.mode === 'number') tip = this.drawNumber(ctx);
    else tip = this.drawTimeline(ctx);
    this.drawSelection(ctx);
    if (tip && this.hover) this.showTip(tip); else this.hideTip();
  }

  X(t) { const { l, r } = this.area, [a, b] = this.dom; return l + ((t - a) / (b - a)) * (r - l); }
  T(x) { const { l, r } = this.area, [a, b] = this.dom; return a + ((x - l) / (r - l)) * (b - a); }

  drawXAxis(ctx, y) {
    const c = this.colors, { l, r } = this.area;
    // As many ticks as their labels leave room for.
    let max = Math.max(1, Math.floor((r - l) / 56)), ticks = [], step = 0;
    for (let k = 0; k < 5; k++) {
      ({ ticks, step } = timeTicks(this.dom[0], this.dom[1], max));
      let lw = 0;
      for (const t of ticks) lw = Math.max(lw, ctx.measureText(tickLabel(t, step)).width);
      if (ticks.length <= 1 || ticks.length * (lw + 14) <= r - l) break;
      max = Math.max(1, Math.floor((r - l) / (lw + 14)));
      if (max >= ticks.length) max = ticks.length - 1;
    }
    ctx.fillStyle = c.muted;
    ctx.strokeStyle = c.grid;
    ctx.lineWidth = 1;
    ctx.textBaseline = 'top';
    ctx.textAlign = 'left';
    ctx.beginPath();
    let right = -Infinity; // the previous label's right edge: labels never overlap
    for (const t of ticks) {
      const x = Math.round(this.X(t)) + 0.5;
      ctx.moveTo(x, y); ctx.lineTo(x, y + 3);
      const s = tickLabel(t, step), tw = ctx.measureText(s).width;
      const tx = Math.max(l, Math.min(r - tw, x - tw / 2));
      if (tx < right + 8) continue;
      ctx.fillText(s, tx, y + 4);
      right = tx + tw;
    }
    ctx.stroke();
    this.root.dataset.ticks = String(ticks.length);
  }

  visibleRange() {
    const pts = this.pts, [a, b] = this.dom;
    let i0 = 0, i1 = pts.length - 1;
    while (i0 < pts.length && pts[i0].x < a) i0++;
    while (i1 >= 0 && pts[i1].x > b) i1--;
    return [Math.max(0, i0 - 1), Math.min(pts.length - 1, i1 + 1), i0, i1];
  }

  drawNumber(ctx) {
    const c = this.colors, pts = this.pts;
    const [j0, j1, i0, i1] = this.visibleRange();
    let lo = Infinity, hi = -Infinity;
    for (let i = i0; i <= i1; i++) { if (pts[i].lo < lo) lo = pts[i].lo; if (pts[i].hi > hi) hi = pts[i].hi; }
    const any = Number.isFinite(lo);
    if (this.state !== 'ready' || !pts.length) {
      // Nothing to plot: a time axis for context (none after an error).
      this.area = { l: 0, r: this.w, t: 6, b: Math.max(10, this.h - 18) };
      this.root.dataset.points = '0';
      if (this.state !== 'error') {
        ctx.fillStyle = c.grid;
        ctx.fillRect(0, this.area.b, this.w, 1);
        this.drawXAxis(ctx, this.area.b + 1);
      }
      return null;
    }
    if (!any) { lo = 0; hi = 1; }
    if (hi === lo) { const pad = Math.abs(hi) * 0.05 || 1; lo -= pad; hi += pad; } else { const pad = (hi - lo) * 0.06; lo -= pad; hi += pad; }
    const plotH = Math.max(10, this.h - 6 - 18);
    const yt = niceTicks(lo, hi, Math.max(2, Math.floor(plotH / 28)));
    let labW = 0;
    for (const v of yt.ticks) labW = Math.max(labW, ctx.measureText(yt.fmt(v)).width);
    this.area = { l: Math.ceil(labW) + 8, r: this.w - 6, t: 6, b: 6 + plotH };
    const { l, r, t, b } = this.area;
    const Y = (v) => t + (1 - (v - lo) / (hi - lo)) * (b - t);

    // Grid and y labels.
    ctx.strokeStyle = c.grid; ctx.lineWidth = 1; ctx.fillStyle = c.muted;
    ctx.textAlign = 'right'; ctx.textBaseline = 'middle';
    ctx.beginPath();
    for (const v of yt.ticks) {
      const y = Math.round(Y(v)) + 0.5;
      if (y < t - 1 || y > b + 1) continue;
      ctx.moveTo(l, y); ctx.lineTo(r, y);
      ctx.fillText(yt.fmt(v), l - 5, y);
    }
    ctx.moveTo(l, b + 0.5); ctx.lineTo(r, b + 0.5);
    ctx.stroke();
    this.drawXAxis(ctx, b + 1);

    if (!any && this.hasData()) {
      this.msg.hidden = false; this.msg.textContent = 'No readings in this part of the range';
    } else if (this.state === 'ready') this.msg.hidden = true;

    ctx.save();
    ctx.beginPath(); ctx.rect(l, t - 2, r - l, b - t + 4); ctx.clip();
    // Runs of points without gaps.
    const runs = [];
    let run = [];
    for (let i = j0; i <= j1; i++) {
      if (run.length && pts[i].x - pts[i - 1].x > this.gap) { runs.push(run); run = []; }
      run.push(pts[i]);
    }
    if (run.length) runs.push(run);
    // The min/max band of bucketed runs.
    ctx.fillStyle = c.fill;
    for (const rn of runs) {
      const bs = rn.filter((p) => p.b);
      if (!bs.length) continue;
      ctx.beginPath();
      if (bs.length === 1) {
        const p = bs[0], x0 = this.X(p.t0), x1 = Math.max(x0 + 2, this.X(p.t1));
        ctx.rect(x0, Y(p.hi), x1 - x0, Math.max(1, Y(p.lo) - Y(p.hi)));
      } else {
        bs.forEach((p, k) => (k ? ctx.lineTo(this.X(p.x), Y(p.hi)) : ctx.moveTo(this.X(p.x), Y(p.hi))));
        for (let k = bs.length - 1; k >= 0; k--) ctx.lineTo(this.X(bs[k].x), Y(bs[k].lo));
        ctx.closePath();
      }
      ctx.fill();
    }
    // The line (raw values, or each bucket's mean).
    ctx.strokeStyle = c.line; ctx.fillStyle = c.line;
    ctx.lineWidth = 1.6; ctx.lineJoin = 'round'; ctx.lineCap = 'round';
    let drawn = 0;
    for (const rn of runs) {
      if (rn.length === 1) {
        ctx.beginPath(); ctx.arc(this.X(rn[0].x), Y(rn[0].v), 2, 0, 2 * Math.PI); ctx.fill();
        drawn++;
        continue;
      }
      ctx.beginPath();
      let lastX = -Infinity;
      rn.forEach((p, k) => {
        const x = this.X(p.x);
        if (k && x - lastX < 0.5 && k !== rn.length - 1) return;
        if (k) ctx.lineTo(x, Y(p.v)); else ctx.moveTo(x, Y(p.v));
        lastX = x;
      });
      ctx.stroke();
      drawn += rn.length;
    }
    // Few raw points: show each.
    if (drawn && drawn < (r - l) / 8 && !pts[j0].b) {
      for (const rn of runs) for (const p of rn) { ctx.beginPath(); ctx.arc(this.X(p.x), Y(p.v), 1.8, 0, 2 * Math.PI); ctx.fill(); }
    }
    if (this.isLive() && pts.length) {
      const p = pts[pts.length - 1];
      ctx.beginPath(); ctx.arc(Math.min(this.X(p.x), r - 2), Y(p.v), 2.6, 0, 2 * Math.PI); ctx.fill();
    }
    this.root.dataset.points = String(Math.max(0, i1 - i0 + 1));

    // Hover: the nearest point.
    let tip = null;
    if (this.hover && !this.drag && i1 >= i0) {
      const hx = this.hover.x;
      let best = -1, bd = Infinity;
      let a = i0, z = i1; // binary search for the first point right of hx
      const th = this.T(hx);
      while (a < z) { const m = (a + z) >> 1; if (pts[m].x < th) a = m + 1; else z = m; }
      for (const k of [a - 1, a]) {
        if (k < i0 || k > i1) continue;
        const d = Math.abs(this.X(pts[k].x) - hx);
        if (d < bd) { bd = d; best = k; }
      }
      if (best >= 0 && bd <= 40) {
        const p = pts[best], x = Math.round(this.X(p.x)) + 0.5;
        ctx.strokeStyle = c.muted; ctx.lineWidth = 1; ctx.setLineDash([3, 3]);
        ctx.beginPath(); ctx.moveTo(x, t); ctx.lineTo(x, b); ctx.stroke();
        ctx.setLineDash([]);
        if (p.b) {
          ctx.strokeStyle = c.line; ctx.lineWidth = 2;
          ctx.beginPath(); ctx.moveTo(x - 4, Y(p.hi)); ctx.lineTo(x + 4, Y(p.hi)); ctx.moveTo(x - 4, Y(p.lo)); ctx.lineTo(x + 4, Y(p.lo)); ctx.stroke();
        }
        ctx.fillStyle = c.card; ctx.strokeStyle = c.line; ctx.lineWidth = 2;
        ctx.beginPath(); ctx.arc(x, Y(p.v), 3.5, 0, 2 * Math.PI); ctx.fill(); ctx.stroke();
        tip = p.b
          ? [['k', this.label], ['v', `mean ${fmtNum(p.v)}`], ['', `min ${fmtNum(p.lo)} · max ${fmtNum(p.hi)}`],
            ['t', `${p.n} reading${p.n === 1 ? '' : 's'} · ${fmtSpanOf(p.t0, p.t1)}`]]
          : [['k', this.label], ['v', fmtNum(p.v)], ['t', fmtTime(p.t0)]];
      }
    }
    ctx.restore();
    return tip;
  }

  /** segments turns the data into [{t0, t1, color, text, tip}] within the domain. */
  segments() {
    const c = this.colors, [a, b] = this.dom, now = this.clock(), out = [];
    const end = Math.min(b, Math.max(now, a));
    if (this.mode === 'availability') {
      for (const iv of this.ivs) {
        const t0 = Math.max(a, iv.from), t1 = Math.min(b, iv.to === null ? end : iv.to);
        if (!(t1 > t0)) continue;
        const st = iv.online ? 'online' : 'offline';
        const lines = [['v', st]];
        if (iv.reason) lines.push(['', iv.reason]);
        const dur = (iv.to === null ? now : iv.to) - iv.from;
        lines.push(['t', `${fmtSpanOf(iv.from, iv.to, iv.to === null)} · ${fmtDur(dur)}`]);
        out.push({ t0, t1, color: iv.online ? c.online : c.offline, text: st, tip: lines });
      }
      return out;
    }
    const pts = this.pts, index = this.colorOf;
    if (index.size > 500) index.clear();
    for (let i = 0; i < pts.length; i++) {
      const p = pts[i];
      // Consecutive equal values are one segment.
      let j = i;
      if (!p.b) {
        while (j + 1 < pts.length && !pts[j + 1].b && sameValue(pts[j + 1].value, p.value)) j++;
      }
      const next = pts[j + 1];
      const segEnd = p.b ? p.t1 : next ? next.t0 : end;
      const t0 = Math.max(a, p.t0), t1 = Math.min(b, segEnd);
      const realEnd = p.b ? p.t1 : next ? next.t0 : null;
      i = j;
      if (!(t1 > t0)) continue;
      let color, text, head;
      if (this.kind === 'onoff') {
        const st = p.st;
        if (p.frac !== null && p.frac > 0 && p.frac < 1) {
          color = mix(c.off, c.on, p.frac);
          text = `${Math.round(p.frac * 100)}%`;
          head = `on ${Math.round(p.frac * 100)}% of the time`;
        } else {
          const on = p.frac !== null ? p.frac >= 1 : st === true;
          color = st === null && p.frac === null ? c.grid : on ? c.on : c.off;
          text = st === null && p.frac === null ? display(p.value) : on ? 'on' : 'off';
          head = p.b ? text : display(p.value);
        }
      } else {
        const key = JSON.stringify(p.value);
        if (!index.has(key)) index.set(key, index.size);
        color = c.palette[index.get(key) % c.palette.length];
        text = display(p.value);
        head = text;
      }
      const dur = (realEnd === null ? now : realEnd) - p.t0;
      out.push({ t0, t1, color, text, tip: [['k', this.label], ['v', head], ['t', `${fmtSpanOf(p.t0, realEnd, realEnd === null)} · ${fmtDur(dur)}`]] });
    }
    return out;
  }

  drawTimeline(ctx) {
    const c = this.colors;
    this.area = { l: 0, r: this.w, t: 2, b: Math.max(8, this.h - 17) };
    const { l, r, t, b } = this.area;
    ctx.fillStyle = c.grid;
    ctx.fillRect(l, Math.round((t + b) / 2), r - l, 1); // "no data" baseline
    this.drawXAxis(ctx, b + 1);
    if (this.state !== 'ready') { this.segs = []; this.root.dataset.segments = '0'; return null; }
    const segs = this.segments();
    this.segs = segs;
    ctx.textBaseline = 'middle';
    ctx.textAlign = 'left';
    for (const s of segs) {
      const x0 = this.X(s.t0), x1 = this.X(s.t1), w = Math.max(1, x1 - x0);
      s.x0 = x0; s.x1 = x0 + w;
      ctx.fillStyle = s.color;
      ctx.fillRect(x0, t, w, b - t);
      const txt = fitText(ctx, s.text, w - 8);
      if (txt) {
        ctx.fillStyle = inkOn(ctx, s.color, c);
        ctx.fillText(txt, x0 + 4, (t + b) / 2);
      }
    }
    this.root.dataset.segments = String(segs.length);
    if (!this.hover || this.drag) return null;
    const hx = this.hover.x;
    const s = segs.find((g) => hx >= g.x0 && hx < g.x1) || segs.find((g) => Math.abs(hx - (g.x0 + g.x1) / 2) < 6);
    if (!s) return null;
    ctx.strokeStyle = c.text; ctx.lineWidth = 1.5;
    ctx.strokeRect(s.x0 + 0.75, t + 0.75, Math.max(1, s.x1 - s.x0 - 1.5), b - t - 1.5);
    return s.tip;
  }

  drawSelection(ctx) {
    if (!this.drag) return;
    const { l, r, t, b } = this.area;
    const x0 = Math.max(l, Math.min(this.drag.x0, this.drag.x1)), x1 = Math.min(r, Math.max(this.drag.x0, this.drag.x1));
    ctx.fillStyle = this.colors.select;
    ctx.fillRect(x0, t, x1 - x0, b - t);
    ctx.strokeStyle = this.colors.muted; ctx.lineWidth = 1;
    ctx.beginPath(); ctx.moveTo(Math.round(x0) + 0.5, t); ctx.lineTo(Math.round(x0) + 0.5, b);
    ctx.moveTo(Math.round(x1) - 0.5, t); ctx.lineTo(Math.round(x1) - 0.5, b); ctx.stroke();
    const s = `${fmtDur(this.T(x1) - this.T(x0))}`;
    ctx.fillStyle = this.colors.text; ctx.textBaseline = 'top'; ctx.textAlign = 'left';
    ctx.fillText(s, Math.min(x1 + 4, r - ctx.measureText(s).width), t + 2);
  }

  // ---------------------------------------------------------------- pointer and tooltip

  px(e) { const rc = this.canvas.getBoundingClientRect(); return e.clientX - rc.left; }

  onDown(e) {
    if (e.pointerType === 'mouse' && e.button !== 0) return;
    this.press = { x: this.px(e), type: e.pointerType };
    try { this.canvas.setPointerCapture(e.pointerId); } catch { /* not capturable */ }
  }

  onMove(e) {
    const x = this.px(e);
    if (this.press) {
      if (!this.drag && Math.abs(x - this.press.x) >= DRAG_PX) this.drag = { x0: this.press.x, x1: x };
      if (this.drag) {
        this.drag.x1 = Math.max(this.area.l, Math.min(this.area.r, x));
        this.hover = null;
        this.queue();
        return;
      }
    }
    if (e.pointerType === 'mouse' || this.hover) {
      this.hover = { x, cx: e.clientX, cy: e.clientY };
      this.queue();
    }
  }

  onUp(e) {
    const press = this.press;
    this.press = null;
    if (!press) return;
    if (this.drag) {
      const { x0, x1 } = this.drag;
      this.drag = null;
      if (Math.abs(x1 - x0) >= DRAG_PX) {
        const t0 = this.T(Math.min(x0, x1)), t1 = this.T(Math.max(x0, x1));
        this.zoomTo(Math.floor(t0), Math.ceil(t1));
      }
      this.queue();
      return;
    }
    // A click or tap: the tooltip at that point (a tap's stays until the next tap).
    this.hover = { x: this.px(e), cx: e.clientX, cy: e.clientY };
    this.queue();
  }

  showTip(lines) {
    if (!this.tip) {
      this.tip = h('div', { class: 'hist-tip', role: 'tooltip' });
      document.body.append(this.tip);
    }
    const tip = this.tip;
    tip.replaceChildren(...lines.map(([cls, text]) => h('div', cls ? { class: `hist-tip-${cls}` } : {}, text)));
    tip.hidden = false;
    const cx = this.hover.cx, cy = this.hover.cy;
    const tw = tip.offsetWidth, th = tip.offsetHeight;
    const vw = document.documentElement.clientWidth, vh = document.documentElement.clientHeight;
    let x = cx + 14;
    if (x + tw > vw - 4) x = cx - tw - 14;
    x = Math.max(4, Math.min(vw - tw - 4, x));
    let y = cy - th - 12;
    if (y < 4) y = Math.min(vh - th - 4, cy + 18);
    tip.style.left = `${Math.round(x)}px`;
    tip.style.top = `${Math.round(y)}px`;
  }

  hideTip() { if (this.tip) this.tip.hidden = true; }

  destroy() {
    if (this.dead) return;
    this.dead = true;
    this.seq++;
    if (this.ctrl) this.ctrl.abort();
    if (this.frame) cancelAnimationFrame(this.frame);
    if (this.timer) clearInterval(this.timer);
    if (this.liveTimer) clearTimeout(this.liveTimer);
    this.ro.disconnect(); this.io.disconnect(); this.mo.disconnect();
    for (const off of this.offs) off();
    if (this.tip) this.tip.remove();
    this.root.remove();
  }

  api() {
    const self = this;
    const c = {
      /** The chart's root element (div.hist). */
      element: this.root,
      /** The selected range's name. */
      get range() { return self.range; },
      /** Whether the chart shows a zoomed sub-range. */
      get zoomed() { return !!self.zoom; },
      /** How many points (or availability intervals) the chart holds now. */
      get points() { return self.mode === 'availability' ? self.ivs.length : self.pts.length; },
      /** Selects a range by name: live, 1h, 24h, 7d, 30d, 1y. */
      setRange: (name) => self.setRange(name),
      /** Shows [from, to] (ms, Date or RFC 3339), fetched at a finer resolution. */
      zoomTo: (from, to) => self.zoomTo(from, to),
      resetZoom: () => self.resetZoom(),
      /** Fetches the current range again. */
      refresh: () => self.load(),
      /** Repaints with the theme's colours read again. */
      redraw: () => self.redraw(),
      destroy: () => self.destroy(),
    };
    if (this.mode === 'availability') c.addStatus = (ts, online, reason) => self.addStatus(ts, online, reason);
    else c.addLive = (ts, value) => self.addLive(ts, value);
    return c;
  }
}

function sameValue(a, b) {
  return a === b || (typeof a === 'object' && a !== null && JSON.stringify(a) === JSON.stringify(b));
}

/** mix blends two colours (anything canvas understands) by f (0 → a, 1 → b). */
let mixCtx = null;
function mix(a, b, f) {
  if (!mixCtx) mixCtx = document.createElement('canvas').getContext('2d');
  const rgb = (s) => {
    mixCtx.fillStyle = '#000'; mixCtx.fillStyle = s;
    const v = String(mixCtx.fillStyle);
    if (v[0] === '#') return [1, 3, 5].map((i) => parseInt(v.slice(i, i + 2), 16));
    const m = /rgba?\(\s*([\d.]+)\D+([\d.]+)\D+([\d.]+)/.exec(v);
    return m ? [m[1], m[2], m[3]].map(Number) : [128, 128, 128];
  };
  const x = rgb(a), y = rgb(b);
  return `rgb(${x.map((v, i) => Math.round(v + (y[i] - v) * f)).join(', ')})`;
}

// ---------------------------------------------------------------- the API

/**
 * mountLabelHistory appends a history chart of one label to container and
 * returns its controller.
 *
 * Options:
 *   device     string, required — the device id
 *   label      string, required
 *   kind       'number' | 'onoff' | 'text' (also the dashboard's 'num' | 'bool');
 *              number draws a line or band, the others a timeline of states
 *   fetchJSON  (url, {signal}) → Promise of the parsed JSON; rejects with an
 *              Error whose message is shown in the chart. Default: this
 *              module's fetchJSON (same-origin cookies).
 *   range      the first range: 'live' (default) | '1h' | '24h' | '7d' | '30d' | '1y'
 *   ranges     the range names the picker offers (default all)
 *   picker     false hides the range picker (setRange still works)
 *   liveWindow ms a live chart spans (default 10 min)
 *   now        () → ms, the clock (default Date.now)
 *   base       URL prefix of the API (default '')
 *   onRangeChange (name) → void, called when the user picks a range
 *
 * Controller: {element, range, zoomed, points, setRange(name), addLive(ts, value),
 * zoomTo(from, to), resetZoom(), refresh(), redraw(), destroy()}.
 * addLive takes every reading of this label from /ws (ts: ms, Date or RFC
 * 3339; value as received); it is drawn in the live range, appended to raw
 * and change answers, and ignored while zoomed or when the answer is bucketed.
 */
export function mountLabelHistory(container, options) {
  const kind = normKind(options && options.kind);
  return new HistoryChart(container, { ...options, kind }, kind === 'number' ? 'number' : 'timeline').api();
}

/**
 * mountAvailability appends a device's online/offline timeline to container.
 * Options as for mountLabelHistory without label and kind; range defaults to
 * '24h' and the picker offers 1h … 1y. The controller has addStatus(ts,
 * online, reason) for the /ws "status" frames instead of addLive.
 */
export function mountAvailability(container, options) {
  return new HistoryChart(container, { ...options }, 'availability').api();
}
