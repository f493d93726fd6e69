// firmware.js — the Firmware page (#/firmware): upload an ESP32 app image
// (drag and drop or a file picker; the gateway answers with what its headers
// say, or why it refuses it), the uploaded images with Delete, an update plan
// (which boards, how many at once) and the update job's progress, which
// survives a reload (#/firmware/job/J, and the last job in localStorage).
//
//   POST   /api/firmware          body: the .bin → {sha256,size,chip,project,version,idf,built} | 400 {"error"}
//   GET    /api/firmware          the list (fwstore.js)
//   DELETE /api/firmware/{sha256}
//   POST   /api/ota               {"firmware","devices","parallel"} → 202 {"job"}
//   GET    /api/ota/{job}         every second while the job runs
//   DELETE /api/ota/{job}         cancels what has not started
//   GET    /api/ota               recent jobs, when the gateway offers it (404: the last job from localStorage)

import { state } from './model.js';
import { get, post, del, request } from './api.js';
import { firmware, loadFirmware, onFirmware } from './fwstore.js';
import { str, fmtBytes, fmtWhen, fit } from './fleetinfo.js';
import { onPage, go, route } from './router.js';
import { confirm } from './dialogs.js';
import { $, h, setText } from './dom.js';

const MAX_IMAGE = 8 << 20;      // the gateway's limit (DESIGN.md): refuse bigger files before sending them
const JOB_POLL_MS = 1000;
const LAST_JOB = 'esp32gw.ota-job';
const isAdmin = () => state.role !== 'viewer';

const view = {
  shown: false,
  plan: null,      // the firmware an update is being planned for
  job: '',         // the job shown
  jobBody: null,
  jobTimer: 0,
  jobSeq: 0,
};

// ---------------------------------------------------------------- upload

const drop = $('drop');
const fileInput = $('fw-file');

// The drop zone is a <label> for the file input: a click or Enter/Space opens the picker.
drop.tabIndex = 0;
fileInput.tabIndex = -1; // one tab stop: the zone
drop.setAttribute('role', 'button');
drop.setAttribute('aria-describedby', 'upload-result');
drop.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); fileInput.click(); }
});
for (const ev of ['dragenter', 'dragover']) {
  drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.add('over'); });
}
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (e) => {
  e.preventDefault();
  drop.classList.remove('over');
  const f = e.dataTransfer && e.dataTransfer.files && e.dataTransfer.files[0];
  if (f) upload(f);
});
// A file dropped beside the zone must not make the browser navigate away to it.
for (const ev of ['dragover', 'drop']) {
  addEventListener(ev, (e) => { if (route.page === 'firmware' && !drop.contains(e.target)) e.preventDefault(); });
}
fileInput.addEventListener('change', () => {
  const f = fileInput.files && fileInput.files[0];
  if (f) upload(f);
  fileInput.value = '';
});

function fwFacts(fw) {
  return [
    ['project', str(fw.project)], ['version', str(fw.version)], ['chip', str(fw.chip)],
    ['IDF', str(fw.idf)], ['built', fw.built ? fmtWhen(fw.built) : ''], ['size', fmtBytes(fw.size)],
    ['SHA-256', str(fw.sha256).slice(0, 12)],
  ].filter(([, v]) => v);
}

function factsList(fw) {
  return h('dl', { class: 'facts' }, ...fwFacts(fw).map(([k, v]) => h('div', {}, h('dt', {}, k), h('dd', { 'data-fact': k }, v))));
}

/** upload sends one file and shows what the gateway read from it, or why it refused it. */
export async function upload(file) {
  const out = $('upload-result');
  out.dataset.state = 'busy';
  if (file.size > MAX_IMAGE) {
    out.dataset.state = 'refused';
    out.replaceChildren(h('p', { class: 'error' }, `${file.name} is ${fmtBytes(file.size)}; the gateway takes images of at most 8 MiB.`));
    return;
  }
  out.replaceChildren(h('p', { class: 'hint' }, `Uploading ${file.name} (${fmtBytes(file.size)})…`));
  try {
    const fw = await request('POST', '/api/firmware', file, { raw: true });
    out.dataset.state = 'ok';
    out.replaceChildren(
      h('p', { class: 'ok' }, `Uploaded ${file.name}: ${str(fw.project)} ${str(fw.version)} for ${str(fw.chip)}.`),
      factsList(fw),
      isAdmin() ? h('button', { type: 'button', onclick: () => openPlan(fw) }, 'Update boards…') : null);
    await loadFirmware();
  } catch (e) {
    out.dataset.state = 'refused';
    out.replaceChildren(h('p', { class: 'error' },
      e.status === 400 ? `The gateway refused ${file.name}: ${e.message}` : `Upload of ${file.name} failed: ${e.message}`));
  }
}

// ---------------------------------------------------------------- the list

function renderList() {
  if (!view.shown) return;
  const list = $('fw-list');
  const msg = $('fw-msg');
  if (firmware.missing) {
    list.replaceChildren();
    setText(msg, 'This gateway does not offer firmware updates (no /api/firmware).');
    return;
  }
  setText(msg, firmware.error ? `Could not load the firmware list: ${firmware.error}`
    : firmware.loaded && !firmware.list.length ? 'No firmware uploaded yet.' : '');
  const sorted = [...firmware.list].sort((a, b) => str(a.project).localeCompare(str(b.project)) || -str(a.version).localeCompare(str(b.version), undefined, { numeric: true }));
  list.replaceChildren(...sorted.map((fw) => {
    const name = `${str(fw.project)} ${str(fw.version)}`;
    const boards = [...state.devices.values()].filter((d) => fit(d, fw).ok && fit(d, fw).older).length;
    return h('li', { class: 'fw-item', 'data-sha': fw.sha256 },
      h('div', { class: 'fw-head' },
        h('strong', {}, name), h('span', { class: 'chip' }, str(fw.chip)),
        boards ? h('span', { class: 'mark update' }, `${boards} board${boards === 1 ? '' : 's'} on an older version`) : null),
      factsList(fw),
      isAdmin() ? h('div', { class: 'fw-actions' },
        h('button', { type: 'button', 'data-action': 'plan', onclick: () => openPlan(fw), 'aria-label': `Update boards to ${name}` }, 'Update boards…'),
        h('button', { type: 'button', class: 'ghost danger', 'data-action': 'delete', onclick: () => remove(fw), 'aria-label': `Delete ${name}` }, 'Delete')) : null);
  }));
  if (view.plan && !firmware.list.some((f) => f.sha256 === view.plan.sha256)) closePlan();
}

onFirmware(renderList);

async function remove(fw) {
  const name = `${str(fw.project)} ${str(fw.version)} (${str(fw.chip)})`;
  if (!await confirm(`Delete ${name} from the gateway? Update jobs already running keep their copy.`, 'Delete', 'Delete this firmware?')) return;
  try {
    await del(`/api/firmware/${encodeURIComponent(fw.sha256)}`);
    setText($('fw-msg'), `Deleted ${name}.`);
  } catch (e) {
    setText($('fw-msg'), `Could not delete ${name}: ${e.message}`);
  }
  loadFirmware();
}

// ---------------------------------------------------------------- planning an update

function openPlan(fw) {
  view.plan = fw;
  $('ota-plan').hidden = false;
  setText($('plan-msg'), '');
  $('plan-msg').hidden = true;
  $('plan-fw').replaceChildren('Firmware ', h('strong', {}, `${str(fw.project)} ${str(fw.version)}`), ` for ${str(fw.chip)}`,
    fw.built ? `, built ${fmtWhen(fw.built)}` : '', '.');
  renderPlan(true);
  $('ota-plan').scrollIntoView({ block: 'start' });
  $('plan-title').tabIndex = -1;
  $('plan-title').focus({ preventScroll: true });
}

function closePlan() {
  view.plan = null;
  $('ota-plan').hidden = true;
}

function renderPlan(fresh) {
  const fw = view.plan;
  if (!fw) return;
  const list = $('plan-list');
  const was = new Set(fresh ? [] : [...list.querySelectorAll('input:checked')].map((i) => i.value));
  const devs = [...state.devices.values()].sort((a, b) => a.name.localeCompare(b.name));
  let older = 0;
  list.replaceChildren(...devs.map((d) => {
    const f = fit(d, fw);
    if (f.ok && f.older) older++;
    const id = `plan-${d.id}`;
    const why = f.ok ? `${f.why}${d.online ? '' : ' · offline now'}` : `cannot update: ${f.why}`;
    return h('li', { class: f.ok ? '' : 'disabled' },
      h('input', { type: 'checkbox', id, value: d.id, disabled: !f.ok, checked: f.ok && was.has(d.id), 'aria-describedby': `${id}-why`, 'data-older': f.ok && f.older ? 'true' : null }),
      h('label', { for: id }, d.name, d.name !== d.id ? h('span', { class: 'fl-id' }, d.id) : null),
      h('span', { class: 'why', id: `${id}-why` }, why));
  }));
  const b = $('plan-older');
  b.textContent = `Select all boards running ${str(fw.project)} on an older version (${older})`;
  b.disabled = older === 0;
  if (!devs.length) list.replaceChildren(h('li', { class: 'hint' }, 'No boards on this gateway.'));
}

$('plan-older').addEventListener('click', () => {
  for (const i of $('plan-list').querySelectorAll('input[type=checkbox]')) i.checked = i.dataset.older === 'true';
});
$('plan-none').addEventListener('click', () => {
  for (const i of $('plan-list').querySelectorAll('input[type=checkbox]')) i.checked = false;
});
$('plan-close').addEventListener('click', closePlan);

$('plan-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const fw = view.plan;
  if (!fw) return;
  const devices = [...$('plan-list').querySelectorAll('input:checked')].map((i) => i.value);
  const parallel = Number($('plan-parallel').value);
  const fail = (t) => { setText($('plan-msg'), t); $('plan-msg').hidden = false; };
  if (!devices.length) return fail('Select at least one board.');
  if (!Number.isInteger(parallel) || parallel < 1 || parallel > 8) { $('plan-parallel').focus(); return fail('Boards at once must be a whole number from 1 to 8.'); }
  $('plan-start').disabled = true;
  try {
    const ans = await post('/api/ota', { firmware: fw.sha256, devices, parallel });
    if (!ans || !ans.job) throw new Error('the gateway answered without a job id');
    closePlan();
    go(`#/firmware/job/${encodeURIComponent(String(ans.job))}`);
  } catch (err) {
    fail(`Could not start the update: ${err.message}`);
  } finally {
    $('plan-start').disabled = false;
  }
});

// ---------------------------------------------------------------- the job

const STATE_TEXT = {
  queued: 'queued', sent: 'sent to the board', downloading: 'downloading', rebooting: 'rebooting',
  done: 'done', failed: 'failed', skipped: 'skipped', cancelled: 'cancelled',
};
const STEP = { queued: 0, sent: 5, downloading: 10, rebooting: 95, done: 100 };

function showJob(id) {
  if (view.job !== id) { view.jobBody = null; view.job = id; }
  try { localStorage.setItem(LAST_JOB, id); } catch { /* private mode */ }
  $('ota-job').hidden = false;
  setText($('job-title'), `Update job ${id}`);
  $('job-msg').hidden = true;
  pollJob();
}

function hideJob() {
  clearTimeout(view.jobTimer);
  view.job = '';
  view.jobBody = null;
  $('ota-job').hidden = true;
}

async function pollJob() {
  clearTimeout(view.jobTimer);
  const id = view.job;
  if (!id || !view.shown) return;
  const seq = ++view.jobSeq;
  try {
    const body = await get(`/api/ota/${encodeURIComponent(id)}`);
    if (seq !== view.jobSeq || id !== view.job) return;
    view.jobBody = body;
    renderJob();
    if (body && body.state === 'running' && view.shown) view.jobTimer = setTimeout(pollJob, JOB_POLL_MS);
  } catch (e) {
    if (seq !== view.jobSeq || id !== view.job) return;
    if (e.status === 404) {
      try { if (localStorage.getItem(LAST_JOB) === id) localStorage.removeItem(LAST_JOB); } catch { /* private mode */ }
      $('job-list').replaceChildren();
      setText($('job-state'), '');
      setText($('job-fw'), '');
      $('job-cancel').hidden = true;
      setText($('job-msg'), `The gateway knows no update job ${id}: ${e.message}`);
      $('job-msg').hidden = false;
      return;
    }
    setText($('job-msg'), `Could not load the job: ${e.message}; trying again.`);
    $('job-msg').hidden = false;
    view.jobTimer = setTimeout(pollJob, 3 * JOB_POLL_MS);
  }
}

function jobStateText(j, n) {
  const c = (s) => n.filter((d) => d.state === s).length;
  switch (j.state) {
    case 'running': return `Running · ${c('done')} of ${n.length} done`;
    case 'done': return `Done · ${c('done')} updated${c('skipped') ? `, ${c('skipped')} skipped` : ''}${c('failed') ? `, ${c('failed')} failed` : ''}`;
    case 'stopped': return `Stopped after the first failure · ${c('done')} updated, ${c('failed')} failed, ${c('cancelled') + c('queued')} not started`;
    case 'cancelled': return `Cancelled · ${c('done')} updated before the cancel`;
    default: return str(j.state);
  }
}

function renderJob() {
  const j = view.jobBody;
  if (!j) return;
  $('job-msg').hidden = true;
  const devs = Array.isArray(j.devices) ? j.devices.filter((d) => d && typeof d.id === 'string') : [];
  const st = $('job-state');
  setText(st, jobStateText(j, devs));
  st.dataset.state = str(j.state);
  const fw = firmware.list.find((f) => f.sha256 === j.firmware);
  setText($('job-fw'), fw ? `${str(fw.project)} ${str(fw.version)} for ${str(fw.chip)}` : `firmware ${str(j.firmware).slice(0, 12)}`);
  $('job-cancel').hidden = j.state !== 'running' || !isAdmin();
  const list = $('job-list');
  const old = new Map([...list.children].map((li) => [li.dataset.device, li]));
  const items = devs.map((d) => {
    let li = old.get(d.id);
    if (!li) {
      const dev = state.devices.get(d.id);
      li = h('li', { class: 'job-item', 'data-device': d.id },
        h('span', { class: 'job-name' }, dev ? dev.name : d.id),
        h('span', { class: 'job-state' }),
        h('div', { class: 'bar', role: 'progressbar', 'aria-valuemin': '0', 'aria-valuemax': '100', 'aria-label': `Update of ${dev ? dev.name : d.id}` },
          h('div', { class: 'fill' })),
        h('span', { class: 'job-error' }));
    }
    const s = str(d.state);
    const p = typeof d.progress === 'number' ? Math.max(0, Math.min(100, Math.round(d.progress))) : null;
    li.dataset.state = s;
    let text = STATE_TEXT[s] || s;
    if (s === 'downloading' && p != null) text += ` ${p} %`;
    setText(li.children[1], text);
    // The bar: how far a board got (a failure keeps its progress, in red);
    // an empty track for one that never started (skipped, cancelled).
    const shown = s === 'downloading' && p != null ? p
      : s === 'failed' ? (p || 100)
      : (STEP[s] ?? 0);
    const bar = li.children[2];
    bar.firstChild.style.width = `${shown}%`;
    bar.setAttribute('aria-valuenow', String(shown));
    bar.setAttribute('aria-valuetext', text);
    const err = s === 'failed' ? (str(d.error) || 'no reason given')
      : s === 'skipped' ? (str(d.error) || 'already on this version, or another chip or project') : str(d.error);
    setText(li.children[3], err);
    return li;
  });
  list.replaceChildren(...items);
}

$('job-cancel').addEventListener('click', async () => {
  const id = view.job;
  if (!id || !await confirm('Cancel this update? Boards already updating finish; the others are not started.', 'Cancel update', 'Cancel the update?')) return;
  try {
    await del(`/api/ota/${encodeURIComponent(id)}`);
  } catch (e) {
    setText($('job-msg'), `Could not cancel: ${e.message}`);
    $('job-msg').hidden = false;
  }
  pollJob();
});

$('job-close').addEventListener('click', () => {
  try { localStorage.removeItem(LAST_JOB); } catch { /* private mode */ }
  hideJob();
  go('#/firmware');
});

async function loadJobs() {
  const box = $('ota-jobs');
  let jobs;
  try {
    jobs = await get('/api/ota');
  } catch {
    box.hidden = true; // an older gateway: the last job comes from localStorage
    return;
  }
  jobs = Array.isArray(jobs) ? jobs.filter((j) => j && j.job != null) : [];
  box.hidden = !jobs.length;
  $('jobs-list').replaceChildren(...jobs.slice(0, 10).map((j) => {
    const fw = firmware.list.find((f) => f.sha256 === j.firmware);
    return h('li', {}, h('a', { href: `#/firmware/job/${encodeURIComponent(String(j.job))}` }, `Job ${j.job}`),
      ' · ', fw ? `${str(fw.project)} ${str(fw.version)}` : str(j.firmware).slice(0, 12), ' · ', str(j.state));
  }));
}

// ---------------------------------------------------------------- the page

onPage('firmware', (parts) => {
  view.shown = true;
  document.body.classList.toggle('viewer', !isAdmin());
  loadFirmware().then(() => { renderList(); if (view.plan) renderPlan(false); if (view.jobBody) renderJob(); });
  renderList();
  let job = parts[0] === 'job' && parts[1] ? parts[1] : '';
  if (!job) {
    try { job = localStorage.getItem(LAST_JOB) || ''; } catch { job = ''; }
  }
  if (job) showJob(job); else hideJob();
  loadJobs();
}, () => {
  view.shown = false;
  clearTimeout(view.jobTimer);
});
