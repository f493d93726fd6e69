// connection.js — the WebSocket to the gateway: connect, resume with
// /ws?since=SEQ after a drop, reconnect with jittered backoff, tell a gateway
// that is down from a login that expired, and the console subscription.

import { state, dirty, schedule, setConn } from './model.js';

const BACKOFF_FIRST_MS = 1000; // first reconnect attempt after 0.5–1 s (jitter: half to all of it)
const BACKOFF_CAP_MS = 10000;  // a LAN gateway restarts in seconds; never wait longer than this

let ws = null;
let attempt = 0;
let retryTimer = 0;
let stopped = false;

/** What the rest of the page does with the connection; app.js sets these. */
export const handlers = {
  message: (m, first) => {}, // every frame; first: the first after (re)connecting
  lost: () => {},            // the socket closed (pending commands get no answer)
  loginNeeded: () => {},     // the gateway answers 401: the login expired
};

function wsURL() {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const since = state.lastSeq !== null ? `?since=${state.lastSeq}` : '';
  return `${proto}//${location.host}/ws${since}`;
}

/** send writes one message; false when not connected. */
export function send(msg) {
  if (!ws || ws.readyState !== WebSocket.OPEN) return false;
  ws.send(JSON.stringify(msg));
  return true;
}

export function connect() {
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
    handlers.message(m, first);
  };
  sock.onclose = (e) => {
    if (ws !== sock) return;
    ws = null;
    handlers.lost();
    for (const dev of state.devices.values()) dirty.devices.add(dev);
    // 1008 "logged out": this session ended (logout elsewhere, token rotated).
    if (e.code === 1008 && e.reason === 'logged out') { loggedOut(); return; }
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
    if (r.status === 401) { stop(); handlers.loginNeeded(); return; }
    if (state.conn === 'offline') setConn('reconnecting');
  } catch {
    if (state.conn !== 'connected') setConn('offline');
  }
}

/** loggedOut shows the login page when this browser's session ended, and
 * reconnects when it still has one (another of its sockets' session ended). */
async function loggedOut() {
  try {
    const r = await fetch('/api/devices', { credentials: 'same-origin', cache: 'no-store' });
    if (r.status === 401) { stop(); handlers.loginNeeded(); return; }
  } catch { /* the gateway is down: reconnect as usual */ }
  scheduleReconnect(0);
}

/** startDelay is how long start() waits before its attempt number tries. */
export function startDelay(tries) { return Math.min(BACKOFF_CAP_MS, 1000 * 2 ** tries); }

export function stop() {
  stopped = true;
  clearTimeout(retryTimer);
  if (ws) { const old = ws; ws = null; old.close(); }
}

export function retryNow() {
  attempt = Math.max(0, attempt - 1);
  connect();
}

/** drop closes the WebSocket as a network blip would; the page resumes with ?since=. */
export function drop() { if (ws) ws.close(4000, 'dropped from the console'); }

/** updateLogSubscription asks for console lines while any console is open. */
export function updateLogSubscription() {
  const want = [...state.devices.values()].some((d) => d.consoleOpen);
  if (want === state.logs) return;
  state.logs = want;
  send({ type: 'subscribe', logs: want });
}

addEventListener('online', () => { if (!stopped && !ws) retryNow(); });
addEventListener('offline', () => { dirty.banner = true; schedule(); });
