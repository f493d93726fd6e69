// app.js — the esp32gw dashboard's entry point. Native ES modules, no
// dependencies, no build step; the page talks only to the gateway that
// served it (same origin):
//   GET  /api/devices                 who is logged in (401 → login page) and first paint
//   GET  /api/session                 {"role":"admin"|"viewer"}: a viewer gets no command controls
//   GET  /api/devices/{id}            label kinds for labels first seen live (model.js)
//   GET  /api/devices/{id}/history    each label's chart in its range (history.js via charts.js)
//   GET  /api/devices/{id}/availability a device's online/offline timeline, once opened
//   WS   /ws[?since=SEQ]              snapshot, events, statuses, logs, command answers (connection.js)
//   POST /logout                      ends the session (its sockets close with 1008 "logged out")
//   the Fleet page's and the Firmware page's requests: fleet.js and firmware.js
//
// The modules: model.js (devices and labels, what is dirty), render.js
// (cards, once per frame), charts.js (mounts history.js's charts and feeds
// them live data), commands.js (commands and their answers), connection.js (the WebSocket),
// router.js (the pages by URL hash), fleet.js (#/fleet: boards, new boards,
// adoption), firmware.js (#/firmware: uploads and update jobs).
// This file wires them together, handles login, and starts the page.

import { state, hooks, onSnapshot, onEvent, onStatus, onLog, onInfo, setConn } from './model.js';
import { perf, renderBanner } from './render.js';
import { refreshCharts, pointsOf } from './charts.js';
import { onAnswer, failPending } from './commands.js';
import * as connection from './connection.js';
import * as router from './router.js';
import { pendingChanged, fleetOrder } from './fleet.js';
import './firmware.js';
import { $ } from './dom.js';

const LOGIN_FLAG = 'esp32gw.login-tried';

// A snapshot after a reconnect means the gateway could not replay what was
// missed (it restarted, or we were away too long): refetch the charts.
hooks.snapshot = (resumed) => { if (resumed) refreshCharts(); };

connection.handlers.message = (m, first) => {
  switch (m && m.type) {
    case 'snapshot': onSnapshot(m, first && state.snapshots > 0); break;
    case 'event': onEvent(m); break;
    case 'status': onStatus(m); break;
    case 'log': onLog(m); break;
    case 'info': onInfo(m); break;
    case 'pending': pendingChanged(); break;
    case 'ack': case 'error': onAnswer(m); break;
  }
};
connection.handlers.lost = () => failPending('connection to the gateway lost before the answer');
connection.handlers.loginNeeded = () => showLogin('');

// ---------------------------------------------------------------- login and start

function showLogin(msg) {
  setConn('login');
  router.stop();
  $('login').hidden = false;
  $('logout').hidden = true;
  $('devices').hidden = true;
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
  connection.stop();
  location.replace('/');
});

$('retry').addEventListener('click', connection.retryNow);

async function start(tries = 0) {
  // Never keep a token in the address bar or history, even if a server did not redirect.
  const q = new URLSearchParams(location.search);
  const failed = q.get('login') === 'failed';
  if (q.has('token') || q.has('login')) history.replaceState(null, '', '/');
  const retry = () => {
    state.retryAt = Date.now() + connection.startDelay(tries);
    setConn('offline');
    setTimeout(() => start(tries + 1), state.retryAt - Date.now());
  };
  let r;
  try {
    r = await fetch('/api/devices', { credentials: 'same-origin', cache: 'no-store' });
  } catch {
    retry();
    return;
  }
  let tried = false;
  try { tried = sessionStorage.getItem(LOGIN_FLAG) === '1'; sessionStorage.removeItem(LOGIN_FLAG); } catch { /* private mode */ }
  if (r.status === 401) {
    showLogin(tried || failed ? 'The gateway did not accept that token. Check for typos, or copy it again from the log or data/token.' : '');
    return;
  }
  if (!r.ok) {
    retry();
    return;
  }
  const body = await r.json();
  // The role before the first paint, so a viewer never sees a control.
  try {
    const who = await fetch('/api/session', { credentials: 'same-origin', cache: 'no-store' });
    if (who.ok) state.role = (await who.json()).role === 'viewer' ? 'viewer' : 'admin';
  } catch { /* an older gateway: admin */ }
  document.body.dataset.role = state.role;
  $('role').hidden = state.role !== 'viewer';
  onSnapshot({ type: 'snapshot', seq: body.seq, gateway: body.gateway, devices: body.devices });
  router.start();
  connection.connect();
  // Offer "Log out" only when the gateway asks for a login at all.
  fetch('/api/devices', { credentials: 'omit', cache: 'no-store' })
    .then((a) => { state.authRequired = a.status === 401; $('logout').hidden = !state.authRequired; })
    .catch(() => {});
}

// A tiny window for tests and debugging from the browser console.
window.esp32gw = {
  get state() { return { conn: state.conn, lastSeq: state.lastSeq, gaps: state.gaps, events: state.events, snapshots: state.snapshots, devices: state.devices.size }; },
  /** drop closes the WebSocket as a network blip would; the page resumes with ?since=. */
  drop: connection.drop,
  /** perf is the time spent updating the page: flushes, total and max ms; reset() starts over. */
  perf: { get flushes() { return perf.flushes; }, get total() { return perf.total; }, get max() { return perf.max; }, reset() { perf.flushes = 0; perf.total = 0; perf.max = 0; } },
  /** points is how many points a label's chart holds in its range (live: the last 10 min, history and live readings). */
  points(device, label) { return pointsOf(state.devices.get(device)?.labels.get(label)); },
  /** fleet is the ids of the Fleet page's rows, in the order shown. */
  fleet: fleetOrder,
};

start();
