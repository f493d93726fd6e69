// fleet.js — the Fleet page (#/fleet): one row per board with what its link
// and its attributes say (status and since when, last seen, uptime and the
// last reset, Wi-Fi RSSI, free heap, firmware, IP/MAC, link, readings per
// minute, malformed frames, reconnects), sortable and filterable; a row
// opens to RSSI and heap history charts (history.js, labels "$rssi" and
// "$heap"), every attribute and a Forget button. Above it, "New boards":
// the boards waiting for adoption, an Adopt dialog and "Add a board" (the
// enroll token and the secrets.h lines).
//
//   GET    /api/devices              every 10 s while shown: readings/min, malformed (model.js applyFleet)
//   GET    /api/pending              every 3 s while shown, and on a {"type":"pending"} frame
//   POST   /api/pending/{id}/adopt   {"id","name","commands"} → 200 device | 409 id taken | 404 gone
//   DELETE /api/devices/{id}         204 | 409 (defined in config.yaml)
//   GET    /api/enroll               {"enroll_token","url","mdns","secrets"} | 403 for a viewer
//   GET    /api/firmware             "update available" (fwstore.js)

import { state, hooks, applyFleet, addDevice, removeDevice } from './model.js';
import { mountLabelHistory } from './history.js';
import { get, post, del } from './api.js';
import { firmware, loadFirmware, onFirmware } from './fwstore.js';
import { num, str, fmtBytes, fmtSpan, fmtAgo, fmtWhen, updateFor, REBOOT_MARK_S } from './fleetinfo.js';
import { onPage } from './router.js';
import { open, confirm, copyText } from './dialogs.js';
import { $, h, setText, setAttr, domID } from './dom.js';

const PENDING_POLL_MS = 3000;  // new boards appear within a few seconds
const DEVICES_POLL_MS = 10000; // readings per minute and malformed counts change slowly
const ID_RE = /^[a-z0-9_-]+$/;
const SORT_KEY = 'esp32gw.fleet-sort';

// ---------------------------------------------------------------- columns

const missing = null; // sorts last whatever the order

const uptimeOf = (d) => num(d.info.uptime);
const COLS = [
  { key: 'name', title: 'Board', sort: (d) => d.name.toLowerCase() },
  { key: 'status', title: 'Status', sort: (d) => [d.online ? 0 : 1, d.since ? -d.since : missing] },
  { key: 'seen', title: 'Last seen', sort: (d) => (d.lastSeen ? -d.lastSeen : missing) },
  { key: 'uptime', title: 'Uptime', sort: uptimeOf },
  { key: 'reset', title: 'Last reset', sort: (d) => str(d.info.reset).toLowerCase() || missing },
  { key: 'rssi', title: 'RSSI', sort: (d) => num(d.info.rssi) },
  { key: 'heap', title: 'Free heap', sort: (d) => num(d.info.heap) },
  { key: 'fw', title: 'Firmware', sort: (d) => str(d.info.fw) || missing },
  { key: 'addr', title: 'IP / MAC', sort: (d) => ipSortKey(ipOf(d)) },
  { key: 'transport', title: 'Link', sort: (d) => d.transport || missing },
  { key: 'rpm', title: 'Readings per min', sort: (d) => d.readingsPerMin },
  { key: 'malformed', title: 'Malformed frames', sort: (d) => d.malformed },
  { key: 'reconnects', title: 'Reconnects', sort: (d) => d.reconnects },
];

function ipOf(d) {
  const ip = str(d.info.ip);
  if (ip) return ip;
  const m = /^\[?([^\]]+?)\]?:\d+$/.exec(d.addr || '');
  return m ? m[1] : (d.addr || '');
}

function ipSortKey(ip) {
  if (!ip) return missing;
  const p = ip.split('.');
  return p.length === 4 && p.every((x) => /^\d+$/.test(x)) ? p.map((x) => x.padStart(3, '0')).join('.') : ip;
}

function cmpKeys(a, b) {
  const x = Array.isArray(a) ? a : [a], y = Array.isArray(b) ? b : [b];
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const p = x[i], q = y[i];
    if (p === q) continue;
    if (p == null) return 1; // missing sorts last
    if (q == null) return -1;
    if (typeof p === 'number' && typeof q === 'number') return p - q;
    return String(p).localeCompare(String(q), undefined, { numeric: true });
  }
  return 0;
}

// ---------------------------------------------------------------- state

const view = {
  shown: false,
  sort: 'name',
  dir: 1,      // 1 ascending, -1 descending
  filter: '',
  rows: new Map(), // device id → {tr, detail, cells, charts, open}
  dirty: false,
  frame: 0,
  tick: 0,
  pendingTimer: 0,
  devicesTimer: 0,
  pending: [],
  pendingLoaded: false,
  pendingError: '',
  pendingMissing: false,
  pendingBusy: false,  // a GET /api/pending is out
  pendingAgain: false, // and another was asked for meanwhile
  adopting: null, // the pending board the adopt dialog is for
  notice: '',     // the outcome of the last adopt or forget, kept until another board waits
};

try {
  const s = JSON.parse(localStorage.getItem(SORT_KEY) || 'null');
  if (s && COLS.some((c) => c.key === s.sort)) { view.sort = s.sort; view.dir = s.dir === -1 ? -1 : 1; }
} catch { /* private mode */ }

const isAdmin = () => state.role !== 'viewer';

// ---------------------------------------------------------------- table head and tools

function buildHead() {
  const head = $('fleet-head');
  head.replaceChildren(...COLS.map((c) => h('th', { scope: 'col', 'data-col': c.key },
    h('button', { type: 'button', class: 'sort', 'data-sort': c.key, onclick: () => setSort(c.key, view.sort === c.key ? -view.dir : 1) },
      c.title, h('span', { class: 'arrow', 'aria-hidden': 'true' })))),
  h('th', { scope: 'col', class: 'col-actions' }, h('span', { class: 'sr-only' }, 'Details')));
  const sel = $('fleet-sort');
  sel.replaceChildren(...COLS.map((c) => h('option', { value: c.key }, c.title)));
  sel.addEventListener('change', () => setSort(sel.value, view.dir));
  $('fleet-dir').addEventListener('click', () => setSort(view.sort, -view.dir));
  $('fleet-filter').addEventListener('input', (e) => { view.filter = e.target.value; markFleet(); });
  markSort();
}

function setSort(key, dir) {
  view.sort = key;
  view.dir = dir;
  try { localStorage.setItem(SORT_KEY, JSON.stringify({ sort: key, dir })); } catch { /* private mode */ }
  markSort();
  markFleet();
}

function markSort() {
  for (const th of $('fleet-head').querySelectorAll('th[data-col]')) {
    const on = th.dataset.col === view.sort;
    if (on) th.setAttribute('aria-sort', view.dir > 0 ? 'ascending' : 'descending');
    else th.removeAttribute('aria-sort');
    th.querySelector('.arrow').textContent = on ? (view.dir > 0 ? ' ▲' : ' ▼') : '';
  }
  $('fleet-sort').value = view.sort;
  const b = $('fleet-dir');
  b.textContent = view.dir > 0 ? '↑ ascending' : '↓ descending';
  b.setAttribute('aria-label', `Sort order: ${view.dir > 0 ? 'ascending' : 'descending'}; press to reverse`);
}

// ---------------------------------------------------------------- rows

function markFleet() {
  if (!view.shown) return;
  view.dirty = true;
  if (view.frame) return;
  view.frame = requestAnimationFrame(renderFleet);
}

hooks.fleet = markFleet;
onFirmware(markFleet);

function buildRow(dev) {
  const did = `fl-${domID(dev.id)}`;
  const cells = {};
  const r = { dev, cells, charts: [], open: false };
  const td = (key, title, ...kids) => (cells[key] = h('td', { 'data-col': title, class: `c-${key}` }, ...kids));
  r.toggle = h('button', {
    type: 'button', class: 'ghost small details', 'aria-expanded': 'false', 'aria-controls': `${did}-detail`,
    'aria-label': `Details of ${dev.name}`, onclick: () => setOpen(r, !r.open),
  }, 'Details');
  r.tr = h('tr', { id: did, 'data-device': dev.id },
    h('th', { scope: 'row', 'data-col': 'Board', class: 'c-name' },
      r.name = h('span', { class: 'fl-name' }), h('span', { class: 'fl-id' }, dev.id)),
    ...COLS.slice(1).map((c) => td(c.key, c.title)),
    h('td', { class: 'col-actions' }, r.toggle));
  r.body = h('div', { class: 'fl-detail' });
  r.detail = h('tr', { class: 'fleet-detail', id: `${did}-detail`, hidden: true },
    h('td', { colspan: String(COLS.length + 1) }, r.body));
  return r;
}

function setOpen(r, openIt) {
  r.open = openIt;
  r.toggle.setAttribute('aria-expanded', String(openIt));
  r.detail.hidden = !openIt;
  r.tr.classList.toggle('open', openIt);
  if (openIt) fillDetail(r);
  else dropCharts(r);
}

function dropCharts(r) {
  for (const c of r.charts) c.destroy();
  r.charts = [];
}

function fillDetail(r) {
  const dev = r.dev;
  dropCharts(r);
  const charts = h('div', { class: 'fl-charts' });
  const chart = (label, title) => {
    const box = h('figure', { class: 'fl-chart', 'data-label': label }, h('figcaption', {}, title));
    charts.append(box);
    r.charts.push(mountLabelHistory(box, { device: dev.id, label, kind: 'number', range: '24h', ranges: ['1h', '24h', '7d', '30d'] }));
  };
  chart('$rssi', 'Wi-Fi RSSI (dBm)');
  chart('$heap', 'Free heap (bytes)');
  r.infoList = h('dl', { class: 'fl-info', 'aria-label': `Attributes of ${dev.name}` });
  const actions = h('div', { class: 'fl-actions' });
  if (isAdmin()) {
    const fromConfig = dev.source === 'config';
    actions.append(h('button', {
      type: 'button', class: 'ghost danger', 'data-action': 'forget', onclick: () => forget(dev),
      disabled: fromConfig, title: fromConfig ? 'Defined in config.yaml; remove it there' : 'Remove this board from the gateway',
    }, `Forget ${dev.name}`));
  }
  r.msg = h('p', { class: 'error', role: 'alert', hidden: true });
  r.body.replaceChildren(charts, r.infoList, actions, r.msg);
  renderInfo(r);
}

function renderInfo(r) {
  if (!r.infoList) return;
  const dev = r.dev;
  const rows = [['id', dev.id], ['link address', dev.addr || '—']];
  for (const k of Object.keys(dev.info).sort()) rows.push([`$${k}`, str(dev.info[k])]);
  const key = JSON.stringify(rows);
  if (r.infoKey === key) return;
  r.infoKey = key;
  r.infoList.replaceChildren(...rows.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

async function forget(dev) {
  const r = view.rows.get(dev.id);
  const ok = await confirm(`Forget ${dev.name} (${dev.id})? The gateway stops accepting its link and drops its token; its history stays. Adopt it again to bring it back.`, 'Forget', 'Forget this board?');
  if (!ok) return;
  try {
    await del(`/api/devices/${encodeURIComponent(dev.id)}`);
    removeDevice(dev.id);
    notice(`Forgot ${dev.name}.`);
  } catch (e) {
    const text = e.status === 409
      ? `${dev.name} is defined in config.yaml; remove it there (and reload the gateway).`
      : `Could not forget ${dev.name}: ${e.message}`;
    if (r && r.msg) { r.msg.textContent = text; r.msg.hidden = false; }
  }
}

const dash = '—';

function rssiClass(v) {
  if (v == null) return '';
  if (v >= -67) return 'good';
  if (v >= -80) return 'fair';
  return 'poor';
}

/** kids replaces el's children only when key differs from last time, so a
 * focused link inside keeps its focus while the page ticks. */
function kids(el, key, build) {
  if (el._key === key) return;
  el._key = key;
  el.replaceChildren(...build());
}

function renderRow(r, now) {
  const d = r.dev, info = d.info, c = r.cells;
  setText(r.name, d.name);
  // status and since when
  const since = d.since ? fmtSpan((now - d.since) / 1000) : '';
  kids(c.status, JSON.stringify([d.online, since, d.reason]), () => [
    h('span', { class: `badge ${d.online ? 'on' : 'off'}` }, d.online ? 'online' : 'offline'),
    since ? h('span', { class: 'sub', title: d.since ? new Date(d.since).toLocaleString() : '' }, `for ${since}`) : '',
    !d.online && d.reason ? h('span', { class: 'sub reason' }, d.reason) : '']);
  setText(c.seen, d.lastSeen ? fmtAgo(d.lastSeen, now) : 'never');
  // uptime, and a mark for a reboot within 24 h
  const up = num(info.uptime);
  const rebooted = up != null && up < REBOOT_MARK_S;
  r.tr.classList.toggle('rebooted', rebooted);
  if (rebooted) r.tr.dataset.rebooted = 'true'; else delete r.tr.dataset.rebooted;
  kids(c.uptime, JSON.stringify([up, rebooted]), () => [up == null ? dash : fmtSpan(up),
    rebooted ? h('span', { class: 'mark reboot', title: 'This board restarted within the last 24 hours' }, '↻ rebooted') : '']);
  setText(c.reset, str(info.reset) || dash);
  const rssi = num(info.rssi);
  setText(c.rssi, rssi == null ? dash : `${rssi} dBm`);
  setAttr(c.rssi, 'data-quality', rssiClass(rssi));
  const heap = num(info.heap);
  setText(c.heap, heap == null ? dash : fmtBytes(heap));
  // firmware: version, project, an update in progress, one available
  const ota = info.ota && typeof info.ota === 'object' ? info.ota : null;
  const avail = updateFor(d, firmware.list);
  kids(c.fw, JSON.stringify([info.fw, info.project, info.chip, ota, avail && avail.sha256]), () => fwCell(info, ota, avail));
  const ip = ipOf(d), mac = str(info.mac);
  kids(c.addr, JSON.stringify([ip, mac]), () => [ip || dash, mac ? h('span', { class: 'sub mono' }, mac) : '']);
  setText(c.transport, d.transport || dash);
  setText(c.rpm, d.readingsPerMin == null ? dash : String(d.readingsPerMin));
  setText(c.malformed, String(d.malformed || 0));
  c.malformed.classList.toggle('warn', d.malformed > 0);
  setText(c.reconnects, String(d.reconnects || 0));
  r.tr.classList.toggle('offline', !d.online);
  if (r.open) renderInfo(r);
}

function fwCell(info, ota, avail) {
  const out = [h('span', { class: 'fw' }, str(info.fw) || dash)];
  if (info.project != null || info.chip != null) out.push(h('span', { class: 'sub' }, [str(info.project), str(info.chip)].filter(Boolean).join(' · ')));
  if (ota && ota.state === 'failed') out.push(h('span', { class: 'sub ota-failed' }, `update failed: ${str(ota.error) || 'no reason given'}`));
  else if (ota && ota.state && ota.state !== 'done' && ota.state !== 'idle') {
    const p = num(ota.progress);
    out.push(h('span', { class: 'sub ota-busy' }, `updating: ${str(ota.state)}${p != null ? ` ${p} %` : ''}`));
  }
  if (avail) out.push(h('a', { class: 'mark update', href: '#/firmware', title: `${avail.project} ${avail.version} for ${avail.chip} is uploaded` }, `update available: ${avail.version}`));
  return out;
}

function matches(d, q) {
  if (!q) return true;
  const info = d.info;
  const hay = [d.id, d.name, d.transport, d.addr, d.online ? 'online' : 'offline', d.reason,
    str(info.fw), str(info.project), str(info.chip), str(info.mac), str(info.ip), str(info.reset)].join(' ').toLowerCase();
  return q.toLowerCase().split(/\s+/).filter(Boolean).every((w) => hay.includes(w));
}

function renderFleet() {
  view.frame = 0;
  if (!view.shown || !view.dirty) return;
  view.dirty = false;
  const now = Date.now();
  const body = $('fleet-body');
  // rows of devices that left
  for (const [id, r] of view.rows) {
    if (state.devices.get(id) === r.dev) continue;
    dropCharts(r);
    r.tr.remove(); r.detail.remove();
    view.rows.delete(id);
  }
  const col = COLS.find((c) => c.key === view.sort) || COLS[0];
  const devs = [...state.devices.values()];
  const keyed = devs.map((d) => ({ d, k: col.sort(d) }));
  keyed.sort((a, b) => {
    const am = a.k == null || (Array.isArray(a.k) && a.k.every((x) => x == null));
    const bm = b.k == null || (Array.isArray(b.k) && b.k.every((x) => x == null));
    if (am !== bm) return am ? 1 : -1;
    return view.dir * cmpKeys(a.k, b.k) || a.d.id.localeCompare(b.d.id);
  });
  let prev = null, shown = 0, rebooted = 0, online = 0, updates = 0;
  for (const { d } of keyed) {
    let r = view.rows.get(d.id);
    if (!r) { r = buildRow(d); view.rows.set(d.id, r); }
    renderRow(r, now);
    const vis = matches(d, view.filter);
    r.tr.hidden = !vis;
    r.detail.hidden = !vis || !r.open;
    if (vis) shown++;
    if (d.online) online++;
    if (r.tr.dataset.rebooted) rebooted++;
    if (updateFor(d, firmware.list)) updates++;
    // keep DOM order = sorted order, moving only what is out of place (focus stays)
    const want = prev ? prev.nextSibling : body.firstChild;
    if (want !== r.tr) body.insertBefore(r.tr, want);
    if (r.tr.nextSibling !== r.detail) body.insertBefore(r.detail, r.tr.nextSibling);
    prev = r.detail;
  }
  const total = devs.length;
  const parts = [`${total} board${total === 1 ? '' : 's'}`, `${online} online`];
  if (rebooted) parts.push(`${rebooted} rebooted in 24 h`);
  if (updates) parts.push(`${updates} with an update available`);
  if (view.filter && shown !== total) parts.push(`${shown} shown`);
  setText($('fleet-summary'), parts.join(' · '));
  const empty = $('fleet-empty');
  empty.hidden = shown > 0;
  setText(empty, total ? 'No board matches the filter.' : 'No boards yet. Adopt one under New boards, or add devices in config.yaml.');
  $('fleet-table').hidden = shown === 0;
}

// ---------------------------------------------------------------- polling while shown

async function pollDevices() {
  try {
    const body = await get('/api/devices');
    for (const d of (body && body.devices) || []) {
      const dev = d && state.devices.get(d.id);
      if (dev) applyFleet(dev, d);
    }
  } catch { /* the WebSocket banner says when the gateway is away */ }
}

async function pollPending() {
  clearTimeout(view.pendingTimer);
  // One request at a time: a call while one is out asks for another after it.
  if (view.pendingBusy) { view.pendingAgain = true; return; }
  view.pendingBusy = true;
  try {
    const list = await get('/api/pending');
    const before = new Set(view.pending.map((p) => p.id));
    view.pending = Array.isArray(list) ? list.filter((p) => p && typeof p.id === 'string') : [];
    if (view.pending.some((p) => !before.has(p.id))) view.notice = '';
    view.pendingError = '';
    view.pendingMissing = false;
  } catch (e) {
    view.pendingMissing = e.status === 404;
    view.pendingError = e.status === 404 ? '' : e.message;
  }
  view.pendingLoaded = true;
  view.pendingBusy = false;
  renderPending();
  if (view.pendingAgain) { view.pendingAgain = false; pollPending(); return; }
  if (view.shown && !view.pendingMissing) view.pendingTimer = setTimeout(pollPending, PENDING_POLL_MS);
}

/** pendingChanged is the {"type":"pending"} frame: look again now. */
export function pendingChanged() {
  if (view.shown) pollPending();
}

function pendingLine(p) {
  const info = p.info && typeof p.info === 'object' ? p.info : {};
  const bits = [];
  const field = (k, v) => { if (v) bits.push(h('span', { class: 'pf' }, h('span', { class: 'pk' }, k), ' ', h('span', { class: 'pv' }, v))); };
  field('chip', str(info.chip));
  field('MAC', str(info.mac));
  field('firmware', [str(info.project), str(info.fw)].filter(Boolean).join(' '));
  field('address', p.addr || p.url || str(info.ip));
  field('link', p.transport === 'ws-dial' ? 'discovered (ws-dial)' : p.transport === 'ws-listen' ? 'enrolled (ws-listen)' : str(p.transport));
  field('first seen', p.first_seen ? fmtAgo(Date.parse(p.first_seen)) : '');
  return bits;
}

function renderPending() {
  const list = $('pending-list');
  const msg = $('pending-msg');
  $('pending-count').hidden = !view.pending.length;
  setText($('pending-count'), String(view.pending.length));
  $('pending-count').setAttribute('aria-label', `${view.pending.length} new board${view.pending.length === 1 ? '' : 's'}`);
  if (view.pendingMissing) {
    list.replaceChildren();
    setText(msg, 'This gateway does not offer adoption (no /api/pending).');
    return;
  }
  const focused = document.activeElement && list.contains(document.activeElement) ? document.activeElement.dataset.pending : null;
  list.replaceChildren(...view.pending.map((p) => {
    const info = p.info && typeof p.info === 'object' ? p.info : {};
    const title = str(info.name) || p.id;
    return h('li', { class: 'pending-item', 'data-pending': p.id },
      h('div', { class: 'pending-main' },
        h('strong', { class: 'pending-title' }, title),
        title !== p.id ? h('span', { class: 'fl-id' }, p.id) : null,
        h('div', { class: 'pending-fields' }, ...pendingLine(p))),
      isAdmin() ? h('button', { type: 'button', 'data-pending': p.id, 'aria-label': `Adopt ${title}`, onclick: () => openAdopt(p) }, 'Adopt') : null);
  }));
  if (focused) list.querySelector(`button[data-pending="${CSS.escape(focused)}"]`)?.focus();
  // An adopt's or forget's outcome stays until another board comes to
  // wait (pollPending); the next poll must not replace it.
  if (view.pendingError) setText(msg, `Could not load new boards: ${view.pendingError}`);
  else if (view.notice) setText(msg, view.notice);
  else if (!view.pending.length && view.pendingLoaded) setText(msg, 'No boards are waiting. Boards that dial in with the enroll token, or that announce themselves over mDNS, appear here.');
  else if (view.pending.length && msg.textContent.startsWith('No boards')) setText(msg, '');
}

/** notice says what an adopt or forget did, in the New boards status line. */
function notice(text) {
  view.notice = text;
  setText($('pending-msg'), text);
}

// ---------------------------------------------------------------- adopt

function suggestID(p) {
  const base = str((p.info || {}).name) || p.id;
  return base.toLowerCase().replace(/[^a-z0-9_-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 64) || 'board';
}

function openAdopt(p) {
  view.adopting = p;
  const info = p.info || {};
  setText($('adopt-what'), [`Board ${p.id}`, str(info.chip), str(info.mac), [str(info.project), str(info.fw)].filter(Boolean).join(' ')].filter(Boolean).join(' · '));
  $('adopt-id').value = suggestID(p);
  $('adopt-name').value = str(info.name) || '';
  $('adopt-commands').value = '';
  showAdoptError('');
  $('adopt-submit').disabled = false;
  open($('adopt-dialog'), $('adopt-id'));
  $('adopt-id').select();
}

function showAdoptError(text, field) {
  const e = $('adopt-error');
  e.textContent = text;
  e.hidden = !text;
  for (const id of ['adopt-id', 'adopt-name', 'adopt-commands']) $(id).removeAttribute('aria-invalid');
  if (field) { field.setAttribute('aria-invalid', 'true'); field.setAttribute('aria-errormessage', 'adopt-error'); field.focus(); }
}

$('adopt-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const p = view.adopting;
  if (!p) return;
  const id = $('adopt-id').value.trim();
  const name = $('adopt-name').value.trim();
  const commands = $('adopt-commands').value.split(',').map((s) => s.trim()).filter(Boolean);
  if (!id) return showAdoptError('The device id is required.', $('adopt-id'));
  if (!ID_RE.test(id)) return showAdoptError('The device id may hold only lower-case letters, digits, _ and - (no spaces).', $('adopt-id'));
  if (state.devices.has(id)) return showAdoptError(`The id ${id} is taken by another board; choose another.`, $('adopt-id'));
  const body = { id };
  if (name) body.name = name;
  if (commands.length) body.commands = commands;
  $('adopt-submit').disabled = true;
  showAdoptError('');
  try {
    const dev = await post(`/api/pending/${encodeURIComponent(p.id)}/adopt`, body);
    $('adopt-dialog').close('ok');
    view.adopting = null;
    if (dev && typeof dev.id === 'string') addDevice(dev);
    view.pending = view.pending.filter((x) => x.id !== p.id);
    view.notice = `Adopted ${name || id}: it reconnects with its own token and is listed in the fleet below.`;
    renderPending();
    pollPending();
  } catch (err) {
    $('adopt-submit').disabled = false;
    if (err.status === 409) showAdoptError(`The id ${id} is taken: ${err.message}`, $('adopt-id'));
    else if (err.status === 404) {
      showAdoptError(`This board is no longer waiting (it disconnected or was adopted elsewhere): ${err.message}`);
      pollPending();
    } else showAdoptError(`Could not adopt: ${err.message}`);
  }
});

$('adopt-id').addEventListener('input', () => {
  const el = $('adopt-id');
  if (el.getAttribute('aria-invalid') === 'true' && ID_RE.test(el.value.trim())) showAdoptError('');
});

// ---------------------------------------------------------------- add a board

async function openEnroll() {
  const box = $('enroll-body');
  box.replaceChildren(h('p', { class: 'hint' }, 'Loading…'));
  open($('enroll-dialog'), $('enroll-dialog').querySelector('[data-close]'));
  let en;
  try {
    en = await get('/api/enroll');
  } catch (e) {
    box.replaceChildren(h('p', { class: 'error', role: 'alert' }, e.status === 403
      ? 'Only an admin login can add boards: the enroll token is not shown to a view-only login.'
      : `Could not load the enroll settings: ${e.message}`));
    return;
  }
  const secrets = str(en && en.secrets);
  const status = h('span', { class: 'copied', role: 'status', 'aria-live': 'polite' });
  const copy = h('button', { type: 'button', class: 'copy', onclick: async () => {
    const ok = await copyText(secrets, $('enroll-dialog'));
    status.textContent = ok ? 'Copied.' : 'Copy failed: select the lines and copy them by hand.';
  } }, 'Copy the lines');
  box.replaceChildren(
    h('ol', { class: 'steps' },
      h('li', {}, 'Copy ', h('code', {}, 'firmware/examples/secrets.h.example'), ' to ', h('code', {}, 'secrets.h'), ' beside the sketch, fill in your Wi-Fi, and put these lines in it:',
        h('pre', { class: 'secrets', id: 'enroll-secrets', tabindex: '0', 'aria-label': 'Lines for secrets.h' }, secrets || '(the gateway sent no lines)'),
        h('div', { class: 'copy-row' }, copy, status)),
      h('li', {}, 'Flash the ', h('code', {}, 'SensorClient'), ' example (Arduino IDE: File → Examples → ESP32Gateway, or ', h('code', {}, 'cd firmware && pio run -e SensorClient -t upload'), ').'),
      h('li', {}, en && en.mdns
        ? 'It finds this gateway over mDNS and dials in with the enroll token.'
        : h('span', {}, 'mDNS is off on this gateway: the board dials ', h('code', {}, str(en && en.url)), ' as written in the lines.')),
      h('li', {}, 'It appears under New boards within a few seconds: press Adopt and give it an id and a name.')),
    h('p', { class: 'hint' }, 'Enroll URL: ', h('code', {}, str(en && en.url)), ' · The enroll token only lets new boards wait for adoption; an adopted board gets a token of its own.'));
}

$('add-board').addEventListener('click', openEnroll);

// ---------------------------------------------------------------- the page

function tick() {
  markFleet();
  if (view.pending.length) renderPendingAges();
}

function renderPendingAges() {
  for (const li of $('pending-list').children) {
    const p = view.pending.find((x) => x.id === li.dataset.pending);
    const pv = p && [...li.querySelectorAll('.pf')].find((e) => e.firstChild.textContent === 'first seen');
    if (pv && p.first_seen) setText(pv.lastChild, fmtAgo(Date.parse(p.first_seen)));
  }
}

onPage('fleet', () => {
  if (view.shown) return;
  view.shown = true;
  document.body.classList.toggle('viewer', !isAdmin());
  view.dirty = true;
  markFleet();
  pollPending();
  pollDevices();
  loadFirmware();
  view.tick = setInterval(tick, 1000);
  view.devicesTimer = setInterval(pollDevices, DEVICES_POLL_MS);
}, () => {
  view.shown = false;
  clearInterval(view.tick);
  clearInterval(view.devicesTimer);
  clearTimeout(view.pendingTimer);
  for (const r of view.rows.values()) if (r.open) setOpen(r, false);
});

buildHead();

/** For tests and the console: the fleet's rows in the order shown. */
export function fleetOrder() {
  return [...$('fleet-body').querySelectorAll('tr[data-device]')].filter((tr) => !tr.hidden).map((tr) => tr.dataset.device);
}

