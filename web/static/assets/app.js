// app.js — the esp32gw dashboard. Plain ES module, no dependencies, no build
// step; it talks only to the gateway that served it (same origin):
//   GET  /api/devices                 who is logged in (401 → login page) and first paint
//   GET  /api/devices/{id}/history    seeds the charts
//   WS   /ws[?since=SEQ]              snapshot, events, statuses, logs, command answers
//   POST /logout                      clears the login cookie
// Messages only change the model (state below) and mark what is dirty; the
// DOM is updated once per animation frame, so 50 boards × 5 labels × 10
// updates/s cost one short frame each, not thousands of layouts.

import { Series, chartColors, drawSpark, fmtNum, fmtSpan } from './chart.js';

const BACKOFF_FIRST_MS = 1000;  // first reconnect attempt after 0.5–1 s (jitter: half to all of it)
const BACKOFF_CAP_MS = 10000;   // a LAN gateway restarts in seconds; never wait longer than this
const COMMAND_TIMEOUT_MS = 5000; // the gateway answers within 2 s; allow for a slow link
const DONE_SHOWN_MS = 2500;     // how long "done" stays next to a control
const LOG_LINES = 500;          // console lines kept per device
const CHART_MIN_INTERVAL_MS = 400; // a chart is redrawn at most this often
const FRAME_BUDGET_MS = 8;      // chart drawing per frame; the rest waits for the next frame

const ON_WORDS = new Set(['on', 'true', 'high', 'yes', 'open', 'enabled', 'active']);
const OFF_WORDS = new Set(['off', 'false', 'low', 'no', 'closed', 'disabled', 'inactive']);

const $ = (id) => document.getElementById(id);

/** h builds an element: h('button', {class: 'x', onclick: f}, 'text', child). */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) if (c != null) el.append(c);
  return el;
}

// ---------------------------------------------------------------- model

/** @typedef {{id:string,name:string,gateway:string,transport:string,remote?:boolean,online:boolean,reason?:string,last_seen:?string,reconnects:number,commands:?string[],labels:?Object}} DeviceJSON */

const state = {
  gateway: '',
  devices: new Map(), // id → Device, in display order
  lastSeq: null,      // seq of the last event or snapshot; resume point for ?since=
  gaps: 0,            // events whose seq skipped ahead (a resume that lost readings)
  events: 0,
  snapshots: 0,
  conn: 'connecting', // connecting | connected | reconnecting | offline | login
  retryAt: 0,
  logs: false,        // subscribed to log lines
  authRequired: false,
};

let cmdSeq = 0;   // command ids
let cmdStamp = 0; // orders command states, so a row of buttons shows the latest
const pending = new Map(); // command id → {dev, key, timer}

class Label {
  constructor(dev, name) {
    this.dev = dev;
    this.name = name;
    this.value = undefined;
    this.ts = 0;
    this.kind = '';        // num | bool | text
    this.on = false;       // for bool
    this.series = null;    // for num
    this.el = null;        // row element
    this.visible = true;   // chart on screen
    this.chartAt = 0;      // last chart draw (performance.now)
    this.size = [0, 0];    // chart CSS size from the ResizeObserver
  }
}

class Device {
  constructor(id) {
    this.id = id;
    this.name = id;
    this.gateway = '';
    this.transport = '';
    this.remote = false;
    this.online = false;
    this.reason = '';
    this.lastSeen = 0;
    this.reconnects = 0;
    this.commands = [];
    this.labels = new Map();
    this.logs = [];
    this.logsDirty = false;
    this.consoleOpen = false;
    this.cmd = new Map(); // control key → {state: pending|done|failed, text, until}
    this.seeded = false;
    this.everOffline = false;
    this.el = null;
    this.structure = true; // rows or controls must be rebuilt
  }
}

// ---------------------------------------------------------------- values

function numeric(v) {
  if (typeof v === 'number') return v;
  if (typeof v === 'string' && /^\s*-?\d+(\.\d+)?([eE][-+]?\d+)?\s*$/.test(v)) return Number(v);
  return null;
}

/** onOff returns true/false for on/off-like values ("on", "LED OFF", true), else null. */
function onOff(v) {
  if (typeof v === 'boolean') return v;
  if (typeof v !== 'string') return null;
  const words = v.trim().toLowerCase().split(/[\s:=_-]+/);
  const w = words[words.length - 1];
  if (ON_WORDS.has(w)) return true;
  if (OFF_WORDS.has(w)) return false;
  return null;
}

function kindOf(v) {
  if (onOff(v) !== null) return 'bool';
  if (numeric(v) !== null) return 'num';
  return 'text';
}

function display(v) {
  if (v === undefined) return '—';
  if (typeof v === 'number') return fmtNum(v);
  if (typeof v === 'string') return v;
  const s = JSON.stringify(v);
  return s.length > 200 ? s.slice(0, 199) + '…' : s;
}

const parseTS = (ts) => (ts ? Date.parse(ts) || 0 : 0);

// ---------------------------------------------------------------- dirty tracking and the frame loop

const dirty = { structure: false, devices: new Set(), labels: new Set(), charts: new Set(), banner: true };
let frameQueued = false, rafID = 0, timerID = 0;

function schedule() {
  if (frameQueued) return;
  frameQueued = true;
  rafID = requestAnimationFrame(flush);
  // Background tabs get no animation frames; a timer keeps them current.
  timerID = setTimeout(flush, 250);
}

function flush() {
  cancelAnimationFrame(rafID);
  clearTimeout(timerID);
  frameQueued = false;
  const t0 = performance.now();
  if (dirty.structure) renderDevices();
  for (const dev of dirty.devices) renderDevice(dev);
  dirty.devices.clear();
  for (const lab of dirty.labels) renderLabel(lab);
  dirty.labels.clear();
  if (dirty.banner) renderBanner();
  drawCharts();
  const ms = performance.now() - t0;
  perf.flushes++;
  perf.total += ms;
  if (ms > perf.max) perf.max = ms;
}

// What the frame loop costs, for window.esp32gw.perf.
const perf = { flushes: 0, total: 0, max: 0 };

function markDevice(dev) { dirty.devices.add(dev); schedule(); }
function markLabel(lab) {
  dirty.labels.add(lab);
  if (lab.kind === 'num') dirty.charts.add(lab);
  schedule();
}

// ---------------------------------------------------------------- applying server messages

function applyDevice(dev, d) {
  const commands = Array.isArray(d.commands) ? d.commands.map(String) : [];
  if (commands.join('\n') !== dev.commands.join('\n')) dev.structure = true;
  dev.name = d.name || d.id;
  dev.gateway = d.gateway || '';
  dev.transport = d.transport || '';
  dev.remote = !!d.remote;
  dev.online = !!d.online;
  dev.reason = d.reason || '';
  dev.lastSeen = Math.max(dev.lastSeen, parseTS(d.last_seen));
  dev.reconnects = d.reconnects || 0;
  dev.commands = commands;
  const labels = d.labels || {};
  for (const name of [...dev.labels.keys()]) {
    if (name in labels) continue;
    const lab = dev.labels.get(name);
    if (lab.canvas) { resizer.unobserve(lab.canvas); viewer.unobserve(lab.canvas); }
    dev.labels.delete(name);
    dev.structure = true;
  }
  for (const [name, lv] of Object.entries(labels)) {
    setLabel(dev, name, lv && lv.value, lv && lv.ts);
  }
  markDevice(dev);
}

function setLabel(dev, name, value, ts) {
  let lab = dev.labels.get(name);
  if (!lab) {
    lab = new Label(dev, name);
    dev.labels.set(name, lab);
    dev.structure = true;
  }
  const t = parseTS(ts) || Date.now();
  if (t < lab.ts && lab.value !== undefined) {
    // An older reading (history or a replay): only the chart wants it.
    const n = numeric(value);
    if (lab.series && n !== null) lab.series.add(t, n);
    return lab;
  }
  const kind = kindOf(value);
  if (kind !== lab.kind) {
    lab.kind = kind;
    dev.structure = true;
    if (kind === 'num' && !lab.series) lab.series = new Series();
  }
  lab.value = value;
  lab.ts = t;
  if (kind === 'bool') lab.on = onOff(value);
  if (kind === 'num') lab.series.add(t, numeric(value));
  if (dev.structure) markDevice(dev);
  markLabel(lab);
  return lab;
}

function onSnapshot(m, resumed) {
  state.snapshots++;
  state.gateway = m.gateway || state.gateway;
  if (typeof m.seq === 'number') state.lastSeq = m.seq;
  const seen = new Set();
  const next = new Map();
  for (const d of m.devices || []) {
    if (!d || typeof d.id !== 'string') continue;
    seen.add(d.id);
    const dev = state.devices.get(d.id) || new Device(d.id);
    next.set(d.id, dev);
    applyDevice(dev, d);
  }
  for (const [id, dev] of state.devices) {
    if (seen.has(id)) continue;
    for (const lab of dev.labels.values()) if (lab.canvas) { resizer.unobserve(lab.canvas); viewer.unobserve(lab.canvas); }
    dev.el?.remove();
    dev.el = null;
  }
  state.devices = next;
  dirty.structure = true;
  dirty.banner = true;
  schedule();
  // A snapshot after a reconnect means the gateway could not replay what was
  // missed (it restarted, or we were away too long): refill the charts.
  seedHistory(!!resumed);
}

function onEvent(m) {
  state.events++;
  if (typeof m.seq === 'number') {
    if (state.lastSeq !== null && m.seq > state.lastSeq + 1) state.gaps++;
    state.lastSeq = m.seq;
  }
  const dev = state.devices.get(m.device);
  if (!dev || typeof m.label !== 'string') return;
  const t = parseTS(m.ts) || Date.now();
  if (t > dev.lastSeen) dev.lastSeen = t;
  if (!dev.online) { dev.online = true; dev.reason = ''; }
  setLabel(dev, m.label, m.value, m.ts);
  markDevice(dev);
}

function onStatus(m) {
  const dev = state.devices.get(m.device);
  if (!dev) return;
  const online = !!m.online;
  if (typeof m.reconnects === 'number') dev.reconnects = m.reconnects;
  else if (online && !dev.online && dev.everOffline) dev.reconnects++;
  if (!online) dev.everOffline = true;
  dev.online = online;
  dev.reason = online ? '' : (m.reason || '');
  const t = parseTS(m.ts);
  if (online && t > dev.lastSeen) dev.lastSeen = t;
  markDevice(dev);
}

function onLog(m) {
  const dev = state.devices.get(m.device);
  if (!dev || typeof m.line !== 'string') return;
  // A console that re-subscribes (after a reconnect) is sent the recent
  // lines again: skip the ones already shown.
  const key = `${m.ts}|${m.line}`;
  if (m.ts && dev.logKeys && dev.logKeys.has(key)) return;
  if (!dev.logKeys) dev.logKeys = new Set();
  dev.logKeys.add(key);
  if (dev.logKeys.size > 4 * LOG_LINES) dev.logKeys = new Set([...dev.logKeys].slice(-LOG_LINES));
  const t = m.ts ? new Date(parseTS(m.ts)) : new Date();
  dev.logs.push(`${t.toTimeString().slice(0, 8)}  ${m.line}`);
  if (dev.logs.length > LOG_LINES) dev.logs.splice(0, dev.logs.length - LOG_LINES);
  dev.logsDirty = true;
  markDevice(dev);
}

function onAnswer(m) {
  const p = pending.get(m.id);
  if (!p) return;
  pending.delete(m.id);
  clearTimeout(p.timer);
  if (m.type === 'ack') setCmd(p.dev, p.key, 'done', 'done');
  else setCmd(p.dev, p.key, 'failed', `failed: ${m.error || 'unknown error'}`);
}

function handle(m, first) {
  switch (m && m.type) {
    case 'snapshot': onSnapshot(m, first && state.snapshots > 0); break;
    case 'event': onEvent(m); break;
    case 'status': onStatus(m); break;
    case 'log': onLog(m); break;
    case 'ack': case 'error': onAnswer(m); break;
  }
}

// ---------------------------------------------------------------- history (chart seeds)

let seeding = 0;
const seedQueue = [];

function seedHistory(all) {
  for (const dev of state.devices.values()) {
    if ((dev.seeded && !all) || seedQueue.includes(dev)) continue;
    if (![...dev.labels.values()].some((l) => l.kind === 'num')) continue;
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
      if (!lab || lab.kind !== 'num' || !Array.isArray(points)) continue;
      for (const p of points) {
        const n = numeric(p && p.value);
        if (n !== null) lab.series.add(parseTS(p.ts), n);
      }
      dirty.charts.add(lab);
    }
    schedule();
  } catch { /* the live stream still fills the chart */ }
}

// ---------------------------------------------------------------- commands

function setCmd(dev, key, st, text) {
  dev.cmd.set(key, { state: st, text, seq: ++cmdStamp, until: st === 'done' ? Date.now() + DONE_SHOWN_MS : 0 });
  markDevice(dev);
}

function sendCommand(dev, key, label, value) {
  if (!ws || ws.readyState !== WebSocket.OPEN) {
    setCmd(dev, key, 'failed', 'failed: not connected to the gateway');
    return;
  }
  const id = `c${++cmdSeq}`;
  const timer = setTimeout(() => {
    if (pending.delete(id)) setCmd(dev, key, 'failed', 'failed: no answer from the gateway');
  }, COMMAND_TIMEOUT_MS);
  pending.set(id, { dev, key, timer });
  const msg = { type: 'command', id, device: dev.id, label, value };
  ws.send(JSON.stringify(msg));
  setCmd(dev, key, 'pending', 'pending…');
}

function failPending(why) {
  for (const [id, p] of pending) {
    clearTimeout(p.timer);
    setCmd(p.dev, p.key, 'failed', `failed: ${why}`);
    pending.delete(id);
  }
}

/** plan decides which controls a device gets: a switch on each on/off-like
 * label when the board takes toggle or on+off, a button for every other
 * allowed command (sent with the device's only state label, if it has one). */
function plan(dev) {
  const has = (c) => dev.commands.includes(c);
  const canSwitch = has('toggle') || (has('on') && has('off'));
  const stateLabels = [...dev.labels.values()].filter((l) => l.kind === 'bool');
  const switches = canSwitch ? stateLabels : [];
  const used = switches.length ? ['toggle', 'on', 'off'] : [];
  const buttons = dev.commands.filter((c) => !used.includes(c));
  let buttonLabel = '';
  if (stateLabels.length === 1) buttonLabel = stateLabels[0].name;
  else if (dev.labels.size === 1) buttonLabel = [...dev.labels.keys()][0];
  return { switches: new Set(switches), buttons, buttonLabel, explicit: has('on') && has('off') };
}

// ---------------------------------------------------------------- rendering

const devicesEl = $('devices');
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

function renderDevices() {
  dirty.structure = false;
  let prev = null;
  for (const dev of state.devices.values()) {
    if (!dev.el) buildCard(dev);
    const want = prev ? prev.nextSibling : devicesEl.firstChild;
    if (want !== dev.el) devicesEl.insertBefore(dev.el, want);
    prev = dev.el;
    dirty.devices.add(dev);
  }
  while (prev && prev.nextSibling) prev.nextSibling.remove();
  if (!prev) devicesEl.replaceChildren();
  $('empty').hidden = state.devices.size > 0 || state.conn === 'login' || state.snapshots === 0;
  const gw = $('gateway');
  gw.textContent = state.gateway ? `· ${state.gateway}` : '';
}

function domID(s) { return s.replace(/[^a-zA-Z0-9_-]/g, (c) => `_${c.charCodeAt(0).toString(16)}`); }

function buildCard(dev) {
  const did = `dev-${domID(dev.id)}`;
  const refs = {};
  const card = h('article', { class: 'card', id: did, 'aria-labelledby': `${did}-name`, 'data-device': dev.id },
    h('header', { class: 'card-head' },
      h('div', { class: 'title' },
        refs.name = h('h2', { id: `${did}-name` }),
        refs.badge = h('span', { class: 'badge' })),
      refs.meta = h('p', { class: 'meta' },
        h('span', { class: 'id', title: 'device id' }, dev.id),
        refs.transport = h('span', { class: 'transport', title: 'transport' }),
        refs.remote = h('span', { class: 'remote', hidden: true }),
        refs.seen = h('span', { class: 'seen' }),
        refs.reconnects = h('span', { class: 'reconnects' })),
      refs.reason = h('p', { class: 'reason', hidden: true })),
    refs.labels = h('ul', { class: 'labels', 'aria-label': 'Readings' }),
    refs.commands = h('div', { class: 'commands', hidden: true }),
    refs.console = h('details', { class: 'console' },
      h('summary', {}, 'Serial console'),
      refs.log = h('pre', { class: 'log', role: 'log', 'aria-label': `Console of ${dev.name}`, tabindex: '0' })));
  refs.console.addEventListener('toggle', () => {
    dev.consoleOpen = refs.console.open;
    dev.logsDirty = true;
    markDevice(dev);
    updateLogSubscription();
  });
  dev.el = card;
  dev.refs = refs;
  dev.structure = true;
}

function buildRows(dev) {
  dev.structure = false;
  const r = dev.refs;
  for (const lab of dev.labels.values()) {
    if (lab.el) { resizer.unobserve(lab.canvas || lab.el); if (lab.canvas) viewer.unobserve(lab.canvas); }
    lab.el = null; lab.canvas = null;
  }
  const p = plan(dev);
  dev.plan = p;
  const rows = [];
  for (const lab of dev.labels.values()) {
    const lid = `${dev.el.id}-l-${domID(lab.name)}`;
    const refs = {};
    const row = h('li', { class: `label kind-${lab.kind}`, 'data-label': lab.name },
      h('div', { class: 'lhead' },
        h('span', { class: 'lname', id: `${lid}-n` }, lab.name),
        refs.value = h('span', { class: 'lvalue', 'aria-labelledby': `${lid}-n` })));
    if (lab.kind === 'num') {
      refs.canvas = h('canvas', { class: 'spark', role: 'img', 'aria-label': `${lab.name}: no data yet` });
      refs.canvas._label = lab;
      row.append(refs.canvas);
      resizer.observe(refs.canvas);
      viewer.observe(refs.canvas);
    }
    if (p.switches.has(lab)) {
      const key = `label:${lab.name}`;
      refs.sw = h('button', {
        type: 'button', role: 'switch', class: 'switch',
        'aria-label': `Toggle ${lab.name} of ${dev.name}`, title: `Toggle ${lab.name}`,
        onclick: () => {
          const on = !!lab.on;
          sendCommand(dev, key, lab.name, p.explicit ? (on ? 'off' : 'on') : 'toggle');
        },
      }, h('span', { class: 'knob', 'aria-hidden': 'true' }), h('span', { class: 'sr-only' }, 'toggle'));
      refs.status = h('span', { class: 'cmdstatus', role: 'status', 'aria-live': 'polite' });
      refs.key = key;
      row.firstChild.append(refs.sw);
      row.append(refs.status);
    }
    lab.el = row; lab.refs = refs; lab.canvas = refs.canvas || null; lab.chartAt = 0;
    rows.push(row);
    dirty.labels.add(lab);
    if (lab.kind === 'num') dirty.charts.add(lab);
  }
  r.labels.replaceChildren(...rows);
  r.labels.hidden = rows.length === 0;
  const btns = p.buttons.map((c) => h('button', {
    type: 'button', class: 'cmd', 'data-command': c,
    'aria-label': `Send ${c} to ${dev.name}`,
    onclick: () => sendCommand(dev, `cmd:${c}`, p.buttonLabel, c),
  }, c));
  if (btns.length) {
    r.cmdStatus = h('span', { class: 'cmdstatus', role: 'status', 'aria-live': 'polite' });
    r.commands.replaceChildren(h('span', { class: 'cmdtitle' }, 'Commands'), ...btns, r.cmdStatus);
  } else {
    r.cmdStatus = null;
    r.commands.replaceChildren();
  }
  r.commands.hidden = btns.length === 0;
}

function ago(ms) {
  if (!ms) return 'never seen';
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return `last seen ${s} s ago`;
  if (s < 3600) return `last seen ${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `last seen ${Math.floor(s / 3600)} h ago`;
  return `last seen ${new Date(ms).toLocaleString()}`;
}

function setText(el, s) { if (el.textContent !== s) el.textContent = s; }
function setAttr(el, k, v) { if (el.getAttribute(k) !== v) el.setAttribute(k, v); }

function renderDevice(dev) {
  if (!dev.el) return;
  if (dev.structure) buildRows(dev);
  const r = dev.refs;
  setText(r.name, dev.name);
  const online = dev.online;
  setText(r.badge, online ? 'online' : 'offline');
  setAttr(r.badge, 'class', `badge ${online ? 'on' : 'off'}`);
  dev.el.classList.toggle('offline', !online);
  setText(r.transport, dev.transport);
  const remote = dev.remote || (dev.gateway && state.gateway && dev.gateway !== state.gateway);
  r.remote.hidden = !remote;
  if (remote) setText(r.remote, `via ${dev.gateway || 'another gateway'}`);
  setText(r.seen, ago(dev.lastSeen));
  setText(r.reconnects, `${dev.reconnects} reconnect${dev.reconnects === 1 ? '' : 's'}`);
  r.reason.hidden = online || !dev.reason;
  if (!online) setText(r.reason, dev.reason);
  const canCommand = online && state.conn === 'connected';
  for (const lab of dev.labels.values()) {
    if (lab.refs && lab.refs.sw) {
      lab.refs.sw.disabled = !canCommand;
      renderCmd(dev, lab.refs.key, lab.refs.status);
    }
  }
  if (r.cmdStatus) {
    for (const b of r.commands.querySelectorAll('button')) b.disabled = !canCommand;
    let shown = null;
    for (const c of dev.plan.buttons) {
      const st = dev.cmd.get(`cmd:${c}`);
      if (st && (!shown || st.seq > shown.seq)) shown = st;
    }
    renderCmdState(shown, r.cmdStatus);
  }
  if (dev.logsDirty && dev.consoleOpen) {
    dev.logsDirty = false;
    const pre = r.log;
    const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.textContent = dev.logs.length ? dev.logs.join('\n') : 'No console lines yet. Lines the board prints that are not JSON readings appear here.';
    if (atEnd) pre.scrollTop = pre.scrollHeight;
  }
}

function renderCmd(dev, key, el) { renderCmdState(dev.cmd.get(key), el); }
function renderCmdState(st, el) {
  if (!el) return;
  if (st && st.state === 'done' && Date.now() > st.until) st.state = 'idle';
  const show = st && st.state !== 'idle';
  setText(el, show ? st.text : '');
  setAttr(el, 'data-state', show ? st.state : 'idle');
}

function renderLabel(lab) {
  if (!lab.el) return;
  const r = lab.refs;
  const text = display(lab.value);
  setText(r.value, text);
  if (lab.kind === 'bool') {
    const st = lab.on ? 'on' : 'off';
    setAttr(lab.el, 'data-state', st);
    if (r.sw) setAttr(r.sw, 'aria-checked', String(!!lab.on));
  }
  if (typeof lab.value !== 'string' || text.length > 40) setAttr(r.value, 'title', text);
}

function drawCharts() {
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

// Every second: "last seen" texts, "done" marks fading, charts sliding left, the banner countdown.
setInterval(() => {
  for (const dev of state.devices.values()) {
    dirty.devices.add(dev);
    for (const lab of dev.labels.values()) if (lab.kind === 'num') dirty.charts.add(lab);
  }
  if (state.conn === 'reconnecting' || state.conn === 'offline') dirty.banner = true;
  schedule();
}, 1000);

matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => {
  colors = null;
  for (const dev of state.devices.values()) for (const lab of dev.labels.values()) if (lab.kind === 'num') { lab.chartAt = 0; dirty.charts.add(lab); }
  schedule();
});

// ---------------------------------------------------------------- connection banner

function setConn(c) {
  if (state.conn === c) return;
  state.conn = c;
  dirty.banner = true;
  for (const dev of state.devices.values()) dirty.devices.add(dev); // controls enable/disable
  schedule();
}

function renderBanner() {
  dirty.banner = false;
  const el = $('connection');
  const secs = Math.max(0, Math.ceil((state.retryAt - Date.now()) / 1000));
  const when = state.retryAt && secs > 0 ? `reconnecting in ${secs} s` : 'reconnecting…';
  let text;
  switch (state.conn) {
    case 'connected': text = 'Connected · live'; break;
    case 'connecting': text = 'Connecting…'; break;
    case 'reconnecting': text = `Connection lost — ${when}`; break;
    case 'offline': text = navigator.onLine === false
      ? `Offline — no network; ${when}`
      : `Offline — gateway unreachable; ${when}`; break;
    case 'login': text = 'Not logged in'; break;
    default: text = state.conn;
  }
  setAttr(el, 'data-state', state.conn);
  setText($('connection-text'), text);
  // Screen readers hear state changes, not the countdown ticking.
  setText($('connection-sr'), {
    connected: 'Connected to the gateway', reconnecting: 'Connection to the gateway lost, reconnecting',
    offline: 'Gateway unreachable, reconnecting', login: 'Not logged in',
  }[state.conn] || '');
  $('retry').hidden = !(state.conn === 'reconnecting' || state.conn === 'offline');
  devicesEl.classList.toggle('stale', state.conn !== 'connected');
  if (devicesEl.classList.contains('stale')) setAttr(devicesEl, 'aria-busy', 'true');
  else devicesEl.removeAttribute('aria-busy');
}

// ---------------------------------------------------------------- WebSocket with resume

let ws = null;
let attempt = 0;
let retryTimer = 0;
let stopped = false;

function wsURL() {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const since = state.lastSeq !== null ? `?since=${state.lastSeq}` : '';
  return `${proto}//${location.host}/ws${since}`;
}

function connect() {
  clearTimeout(retryTimer);
  if (stopped) return;
  if (ws) { const old = ws; ws = null; old.close(); }
  state.retryAt = 0;
  dirty.banner = true;
  schedule();
  let sock;
  try { sock = new WebSocket(wsURL()); } catch { scheduleReconnect(0); return; }
  ws = sock;
  sock.onopen = () => {
    if (ws !== sock) return;
    attempt = 0;
    if (state.logs) sock.send(JSON.stringify({ type: 'subscribe', logs: true }));
    setConn('connected');
  };
  sock.onmessage = (e) => {
    if (ws !== sock) return;
    let m;
    try { m = JSON.parse(e.data); } catch { return; }
    const first = !sock.gotFirst;
    sock.gotFirst = true;
    handle(m, first);
  };
  sock.onclose = (e) => {
    if (ws !== sock) return;
    ws = null;
    failPending('connection to the gateway lost before the answer');
    for (const dev of state.devices.values()) dirty.devices.add(dev);
    scheduleReconnect(e.code);
  };
}

function scheduleReconnect(code) {
  if (stopped) return;
  // 1008/1013: this browser fell behind; resume at once with ?since=.
  const slow = code === 1008 || code === 1013;
  const base = slow && attempt === 0 ? 250 : Math.min(BACKOFF_CAP_MS, BACKOFF_FIRST_MS * 2 ** attempt);
  const delay = Math.round(base * (0.5 + Math.random() / 2));
  attempt++;
  state.retryAt = Date.now() + delay;
  setConn(state.conn === 'offline' ? 'offline' : 'reconnecting');
  dirty.banner = true;
  schedule();
  retryTimer = setTimeout(connect, delay);
  if (attempt >= 2) probe();
}

/** probe tells a gateway that is down from a login that expired. */
async function probe() {
  try {
    const r = await fetch('/api/devices', { credentials: 'same-origin', cache: 'no-store' });
    if (r.status === 401) { stop(); showLogin(''); return; }
    if (state.conn === 'offline') setConn('reconnecting');
  } catch {
    if (state.conn !== 'connected') setConn('offline');
  }
}

function stop() {
  stopped = true;
  clearTimeout(retryTimer);
  if (ws) { const old = ws; ws = null; old.close(); }
}

function retryNow() {
  attempt = Math.max(0, attempt - 1);
  connect();
}

function updateLogSubscription() {
  const want = [...state.devices.values()].some((d) => d.consoleOpen);
  if (want === state.logs) return;
  state.logs = want;
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'subscribe', logs: want }));
}

addEventListener('online', () => { if (!stopped && !ws) retryNow(); });
addEventListener('offline', () => { dirty.banner = true; schedule(); });

// ---------------------------------------------------------------- login and start

const LOGIN_FLAG = 'esp32gw.login-tried';

function showLogin(msg) {
  setConn('login');
  $('login').hidden = false;
  $('logout').hidden = true;
  devicesEl.hidden = true;
  $('empty').hidden = true;
  const err = $('login-error');
  err.hidden = !msg;
  err.textContent = msg || '';
  renderBanner();
  $('token').focus();
}

$('login-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const token = $('token').value.trim();
  if (!token) return;
  try { sessionStorage.setItem(LOGIN_FLAG, '1'); } catch { /* private mode */ }
  // The gateway sets an HttpOnly cookie and redirects to / without the token.
  location.assign(`/?token=${encodeURIComponent(token)}`);
});

$('logout').addEventListener('click', async () => {
  try { await fetch('/logout', { method: 'POST', credentials: 'same-origin' }); } catch { /* shown below anyway */ }
  stop();
  location.replace('/');
});

$('retry').addEventListener('click', retryNow);

async function start(tries = 0) {
  // Never keep a token in the address bar or history, even if a server did not redirect.
  const q = new URLSearchParams(location.search);
  const failed = q.get('login') === 'failed';
  if (q.has('token') || q.has('login')) history.replaceState(null, '', '/');
  let r;
  try {
    r = await fetch('/api/devices', { credentials: 'same-origin', cache: 'no-store' });
  } catch {
    state.retryAt = Date.now() + Math.min(BACKOFF_CAP_MS, 1000 * 2 ** tries);
    setConn('offline');
    setTimeout(() => start(tries + 1), state.retryAt - Date.now());
    return;
  }
  let tried = false;
  try { tried = sessionStorage.getItem(LOGIN_FLAG) === '1'; sessionStorage.removeItem(LOGIN_FLAG); } catch { /* private mode */ }
  if (r.status === 401) {
    showLogin(tried || failed ? 'The gateway did not accept that token. Check for typos, or copy it again from the log or data/token.' : '');
    return;
  }
  if (!r.ok) {
    state.retryAt = Date.now() + Math.min(BACKOFF_CAP_MS, 1000 * 2 ** tries);
    setConn('offline');
    setTimeout(() => start(tries + 1), state.retryAt - Date.now());
    return;
  }
  const body = await r.json();
  onSnapshot({ type: 'snapshot', seq: body.seq, gateway: body.gateway, devices: body.devices });
  connect();
  // Offer "Log out" only when the gateway asks for a login at all.
  fetch('/api/devices', { credentials: 'omit', cache: 'no-store' })
    .then((a) => { state.authRequired = a.status === 401; $('logout').hidden = !state.authRequired; })
    .catch(() => {});
}

// A tiny window for tests and debugging from the browser console.
window.esp32gw = {
  get state() { return { conn: state.conn, lastSeq: state.lastSeq, gaps: state.gaps, events: state.events, snapshots: state.snapshots, devices: state.devices.size }; },
  /** drop closes the WebSocket as a network blip would; the page resumes with ?since=. */
  drop() { if (ws) ws.close(4000, 'dropped from the console'); },
  /** perf is the time spent updating the page: flushes, total and max ms; reset() starts over. */
  perf: { get flushes() { return perf.flushes; }, get total() { return perf.total; }, get max() { return perf.max; }, reset() { perf.flushes = 0; perf.total = 0; perf.max = 0; } },
  /** points is how many chart points a numeric label holds. */
  points(device, label) { return state.devices.get(device)?.labels.get(label)?.series?.length ?? 0; },
};

start();
