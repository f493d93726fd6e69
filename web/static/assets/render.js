// render.js — draws the model: device cards, label rows with their
// switches and history charts (charts.js mounts them), command buttons and
// answers, the console, the connection banner. Everything is drawn from
// what model.js marked dirty, once per animation frame, so 50 boards × 5
// labels × 10 updates/s cost one short frame each, not thousands of layouts.

import { state, dirty, hooks, setScheduler, schedule, markDevice, display } from './model.js';
import { plan, sendCommand } from './commands.js';
import { placeChart, toggleAvailability, dropAvailability } from './charts.js';
import { updateLogSubscription } from './connection.js';
import { $, h, setText, setAttr, domID } from './dom.js';

const devicesEl = $('devices');

// ---------------------------------------------------------------- the frame loop

let frameQueued = false, rafID = 0, timerID = 0;

function scheduleFrame() {
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
  const ms = performance.now() - t0;
  perf.flushes++;
  perf.total += ms;
  if (ms > perf.max) perf.max = ms;
}

// What the frame loop costs, for window.esp32gw.perf.
export const perf = { flushes: 0, total: 0, max: 0 };

setScheduler(scheduleFrame);

hooks.deviceGone = (dev) => { dropAvailability(dev); dev.el?.remove(); dev.el = null; };

// ---------------------------------------------------------------- cards

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
        refs.reconnects = h('span', { class: 'reconnects' }),
        refs.availBtn = h('button', {
          type: 'button', class: 'avail-btn', 'aria-expanded': 'false', 'aria-controls': `${did}-avail`,
          title: 'When was this board online? Show its online/offline timeline',
        }, 'availability')),
      refs.reason = h('p', { class: 'reason', hidden: true }),
      refs.avail = h('div', { class: 'avail', id: `${did}-avail`, role: 'region', 'aria-label': `Availability of ${dev.id}`, hidden: true })),
    refs.labels = h('ul', { class: 'labels', 'aria-label': 'Readings' }),
    refs.commands = h('div', { class: 'commands', hidden: true }),
    refs.console = h('details', { class: 'console' },
      h('summary', {}, 'Serial console'),
      refs.log = h('pre', { class: 'log', role: 'log', 'aria-label': `Console of ${dev.name}`, tabindex: '0' })));
  refs.availBtn.addEventListener('click', () => {
    const open = refs.availBtn.getAttribute('aria-expanded') !== 'true';
    refs.availBtn.setAttribute('aria-expanded', String(open));
    toggleAvailability(dev, refs.avail, open);
  });
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
  for (const lab of dev.labels.values()) lab.el = null;
  const p = plan(dev);
  dev.plan = p;
  const rows = [];
  for (const lab of dev.labels.values()) {
    const lid = `${dev.el.id}-l-${domID(lab.name)}`;
    const refs = {};
    const row = h('li', { class: `label kind-${lab.kind || 'text'}`, 'data-label': lab.name },
      h('div', { class: 'lhead' },
        h('span', { class: 'lname', id: `${lid}-n` }, lab.name),
        refs.value = h('span', { class: 'lvalue', 'aria-labelledby': `${lid}-n` })));
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
    placeChart(lab, row);
    lab.el = row; lab.refs = refs;
    rows.push(row);
    dirty.labels.add(lab);
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
  if (lab.kind === 'onoff') {
    const st = lab.on ? 'on' : 'off';
    setAttr(lab.el, 'data-state', st);
    if (r.sw) setAttr(r.sw, 'aria-checked', String(!!lab.on));
  }
  if (typeof lab.value !== 'string' || text.length > 40) setAttr(r.value, 'title', text);
}

// Every second: "last seen" texts, "done" marks fading, the banner countdown
// (live charts slide by themselves).
setInterval(() => {
  for (const dev of state.devices.values()) dirty.devices.add(dev);
  if (state.conn === 'reconnecting' || state.conn === 'offline') dirty.banner = true;
  schedule();
}, 1000);

// ---------------------------------------------------------------- connection banner

export function renderBanner() {
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

