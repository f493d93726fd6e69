// model.js — what the dashboard knows: the gateway's devices and their
// labels, the connection state, and what changed since the page was last
// drawn. Server messages only change this model and mark what is dirty;
// render.js draws the dirty parts once per animation frame.
//
// Label kinds come from the gateway (docs/contract-notes.md, "Browser
// protocol"): each label of a device object carries "kind" ("number",
// "onoff" or "text"). Live events carry no kind: a label keeps the kind the
// last device object gave it, and a label first seen in an event, or whose
// value no longer fits its kind, makes the page ask GET /api/devices/{id}
// for the kinds again.

const LOG_LINES = 500;        // console lines kept per device
const KINDS_MIN_GAP_MS = 1000; // at most one kinds request per device this often

const KINDS = new Set(['number', 'onoff', 'text']);

/** @typedef {{id:string,name:string,gateway:string,transport:string,remote?:boolean,online:boolean,reason?:string,last_seen:?string,reconnects:number,commands:?string[],labels:?Object}} DeviceJSON */

export const state = {
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
  role: 'admin',      // admin | viewer (GET /api/session): a viewer gets no command controls
};

export class Label {
  constructor(dev, name) {
    this.dev = dev;
    this.name = name;
    this.value = undefined;
    this.ts = 0;
    this.kind = '';        // number | onoff | text, from the gateway; '' until it says
    this.on = false;       // for onoff
    this.el = null;        // row element
    this.hist = null;      // its history chart's controller (charts.js)
    this.histKind = '';    // the kind that chart was mounted for
    this.range = 'live';   // the range picked for its chart
  }
}

export class Device {
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
    this.everOffline = false;
    this.kinds = null;    // the kinds request: {busy, again, at}
    this.avail = null;    // the online/offline timeline's controller, once opened (charts.js)
    this.el = null;
    this.structure = true; // rows or controls must be rebuilt
    // The fleet view's figures (fleet.js): the board's attributes ($fw,
    // $rssi, … without the '$'), since when online/offline (ms), the link's
    // remote address, readings in the last minute, unusable frames.
    this.info = {};
    this.since = 0;
    this.addr = '';
    this.readingsPerMin = null;
    this.malformed = 0;
    this.source = '';
  }
}

// ---------------------------------------------------------------- values

/** numberOf is the number a value of a "number" label holds: a JSON number,
 * or text holding only a decimal number ("21.5"); null for anything else. */
export function numberOf(v) {
  if (typeof v === 'number') return v;
  if (typeof v !== 'string') return null;
  const t = v.trim();
  // Digits, a point, signs and an exponent only, as the gateway decides.
  if (!/^[0-9.eE+-]+$/.test(t)) return null;
  const n = Number(t);
  return Number.isFinite(n) ? n : null;
}

// The on/off rule shared with the gateway (docs/contract-notes.md): a value
// of an "onoff" label is on when it is true, or text whose last word (split
// at spaces, ':', '=', '_' and '-', any case) is one of these; else off.
const ON_LAST_WORDS = new Set(['on', 'true', 'high', 'yes', 'open', 'enabled', 'active']);

/** isOn tells on from off for a value of an "onoff" label. */
export function isOn(v) {
  if (typeof v === 'boolean') return v;
  if (typeof v !== 'string') return false;
  const words = v.toLowerCase().split(/[ \t\n\r:=_-]+/).filter(Boolean);
  return words.length > 0 && ON_LAST_WORDS.has(words[words.length - 1]);
}

/** fits tells whether a value can be shown as a label of kind k; when it
 * cannot, the gateway has classified the label anew. */
function fits(k, v) {
  switch (k) {
    case 'number': return numberOf(v) !== null;
    case 'onoff': return typeof v === 'boolean' || typeof v === 'string';
    case 'text': return typeof v !== 'number' && typeof v !== 'boolean';
    default: return false;
  }
}

/** fmtNum shows a number: integers as they are, others with at most 3 decimals. */
export function fmtNum(v) {
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e9 || a < 1e-3)) return v.toPrecision(4);
  return String(Number(v.toFixed(3)));
}

export function display(v) {
  if (v === undefined) return '—';
  if (typeof v === 'number') return fmtNum(v);
  if (typeof v === 'string') return v;
  const s = JSON.stringify(v);
  return s.length > 200 ? s.slice(0, 199) + '…' : s;
}

export const parseTS = (ts) => (ts ? Date.parse(ts) || 0 : 0);

// ---------------------------------------------------------------- dirty tracking

/** What must be drawn again; render.js empties it once per frame. */
export const dirty = { structure: false, devices: new Set(), labels: new Set(), banner: true };

let scheduler = () => {};
/** setScheduler names the function that asks for the next frame. */
export function setScheduler(fn) { scheduler = fn; }
export function schedule() { scheduler(); }

export function markDevice(dev) { dirty.devices.add(dev); schedule(); }
export function markLabel(lab) {
  dirty.labels.add(lab);
  schedule();
}

/** Hooks the other modules set: what else happens when the model changes. */
export const hooks = {
  labelGone: (lab) => {},     // a label left the page (its chart is destroyed)
  deviceGone: (dev) => {},    // a device left the page
  snapshot: (resumed) => {},  // a snapshot was applied; resumed: after a reconnect
  reading: (lab, ts, value) => {},         // a live event of a label (ts: ms)
  status: (dev, ts, online, reason) => {}, // a live status frame (ts: ms, or 0 when it has none)
  fleet: () => {},            // a device's fleet figures or the device list changed (fleet.js)
};

export function setConn(c) {
  if (state.conn === c) return;
  state.conn = c;
  dirty.banner = true;
  for (const dev of state.devices.values()) dirty.devices.add(dev); // controls enable/disable
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
  applyFleet(dev, d);
  const labels = {};
  // Board attributes ($fw, $rssi, …) belong to the fleet page, never to a card.
  for (const [name, lv] of Object.entries(d.labels || {})) if (!name.startsWith('$')) labels[name] = lv;
  for (const name of [...dev.labels.keys()]) {
    if (name in labels) continue;
    hooks.labelGone(dev.labels.get(name));
    dev.labels.delete(name);
    dev.structure = true;
  }
  for (const [name, lv] of Object.entries(labels)) {
    setLabel(dev, name, lv && lv.value, lv && lv.ts, lv && lv.kind);
  }
  markDevice(dev);
}

/** applyFleet takes the fleet figures of a device object (GET /api/devices, snapshot). */
export function applyFleet(dev, d) {
  if (d.info && typeof d.info === 'object' && !Array.isArray(d.info)) dev.info = { ...d.info };
  if ('since' in d) dev.since = parseTS(d.since);
  if (typeof d.addr === 'string') dev.addr = d.addr;
  if (typeof d.readings_per_min === 'number') dev.readingsPerMin = d.readings_per_min;
  if (typeof d.malformed === 'number') dev.malformed = d.malformed;
  if (typeof d.reconnects === 'number') dev.reconnects = d.reconnects;
  if (typeof d.source === 'string') dev.source = d.source;
  if (typeof d.online === 'boolean') dev.online = d.online;
  const seen = parseTS(d.last_seen);
  if (seen > dev.lastSeen) dev.lastSeen = seen;
  hooks.fleet();
}

/** setKind gives a label the kind the gateway says it has. */
function setKind(lab, kind) {
  if (kind === lab.kind) return;
  lab.kind = kind;
  lab.dev.structure = true;
  if (kind === 'onoff') lab.on = isOn(lab.value);
  markDevice(lab.dev);
  markLabel(lab);
}

/** setLabel records a value; kind is the gateway's, or undefined for a live
 * event (the label keeps its kind). */
function setLabel(dev, name, value, ts, kind) {
  let lab = dev.labels.get(name);
  if (!lab) {
    lab = new Label(dev, name);
    dev.labels.set(name, lab);
    dev.structure = true;
  }
  const t = parseTS(ts) || Date.now();
  if (t < lab.ts && lab.value !== undefined) {
    // An older reading (a replay): only the chart wants it (onEvent).
    if (KINDS.has(kind) && kind !== lab.kind) setKind(lab, kind);
    return lab;
  }
  lab.value = value;
  lab.ts = t;
  if (KINDS.has(kind)) setKind(lab, kind);
  else if (!fits(lab.kind, value)) requestKinds(dev);
  if (lab.kind === 'onoff') lab.on = isOn(value);
  if (dev.structure) markDevice(dev);
  markLabel(lab);
  return lab;
}

/** requestKinds asks the gateway for a device's label kinds: one request
 * at a time per device, at most one a second. */
function requestKinds(dev) {
  const k = dev.kinds || (dev.kinds = { busy: false, again: false, at: 0 });
  if (k.busy) { k.again = true; return; }
  k.busy = true;
  const wait = Math.max(0, k.at + KINDS_MIN_GAP_MS - Date.now());
  setTimeout(async () => {
    k.at = Date.now();
    try {
      const r = await fetch(`/api/devices/${encodeURIComponent(dev.id)}`, { credentials: 'same-origin', cache: 'no-store' });
      const body = r.ok ? await r.json() : null;
      for (const [name, lv] of Object.entries((body && body.labels) || {})) {
        const lab = dev.labels.get(name);
        if (lab && lv && KINDS.has(lv.kind)) setKind(lab, lv.kind);
      }
    } catch { /* asked again by the next value that does not fit */ }
    k.busy = false;
    if (k.again) { k.again = false; requestKinds(dev); }
  }, wait);
}

export function onSnapshot(m, resumed) {
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
    for (const lab of dev.labels.values()) hooks.labelGone(lab);
    hooks.deviceGone(dev);
  }
  state.devices = next;
  dirty.structure = true;
  dirty.banner = true;
  schedule();
  hooks.snapshot(!!resumed);
  hooks.fleet();
}

export function onEvent(m) {
  state.events++;
  if (typeof m.seq === 'number') {
    if (state.lastSeq !== null && m.seq > state.lastSeq + 1) state.gaps++;
    state.lastSeq = m.seq;
  }
  const dev = state.devices.get(m.device);
  if (!dev || typeof m.label !== 'string' || m.label.startsWith('$')) return;
  const t = parseTS(m.ts) || Date.now();
  if (t > dev.lastSeen) dev.lastSeen = t;
  if (!dev.online) { dev.online = true; dev.reason = ''; }
  const lab = setLabel(dev, m.label, m.value, m.ts);
  hooks.reading(lab, t, m.value);
  markDevice(dev);
}

export function onStatus(m) {
  const dev = state.devices.get(m.device);
  if (!dev) return;
  const online = !!m.online;
  if (typeof m.reconnects === 'number') dev.reconnects = m.reconnects;
  else if (online && !dev.online && dev.everOffline) dev.reconnects++;
  if (!online) dev.everOffline = true;
  if (online !== dev.online || !dev.since) dev.since = parseTS(m.ts) || Date.now();
  dev.online = online;
  dev.reason = online ? '' : (m.reason || '');
  const t = parseTS(m.ts);
  if (online && t > dev.lastSeen) dev.lastSeen = t;
  hooks.status(dev, t, online, dev.reason);
  hooks.fleet();
  markDevice(dev);
}

/** onInfo takes an "info" frame: all of a device's attributes, anew. */
export function onInfo(m) {
  const dev = state.devices.get(m.device);
  if (!dev || !m.info || typeof m.info !== 'object' || Array.isArray(m.info)) return;
  dev.info = { ...m.info };
  const t = parseTS(m.ts);
  if (t > dev.lastSeen) dev.lastSeen = t;
  hooks.fleet();
}

/** addDevice puts a device object into the model (an adopted board), ahead
 * of the snapshot the gateway sends every browser. */
export function addDevice(d) {
  if (!d || typeof d.id !== 'string' || state.devices.has(d.id)) return;
  const dev = new Device(d.id);
  state.devices.set(d.id, dev);
  applyDevice(dev, d);
  dirty.structure = true;
  schedule();
}

/** removeDevice takes a forgotten device off the page. */
export function removeDevice(id) {
  const dev = state.devices.get(id);
  if (!dev) return;
  for (const lab of dev.labels.values()) hooks.labelGone(lab);
  hooks.deviceGone(dev);
  state.devices.delete(id);
  dirty.structure = true;
  schedule();
  hooks.fleet();
}

export function onLog(m) {
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
