// fleetinfo.js — reading a board's attributes (device.info: fw, project,
// chip, mac, ip, rssi, heap, uptime, reset, ota, …) and the figures the Fleet
// and Firmware pages show: formats, version order, which uploaded firmware
// fits which board. No DOM here.

/** A board that booted less than this long ago (s) is marked "rebooted". */
export const REBOOT_MARK_S = 86400;

/** num is an attribute as a number (boards may send "182340"); null when it is none. */
export function num(v) {
  if (typeof v === 'number') return Number.isFinite(v) ? v : null;
  if (typeof v === 'string' && /^\s*-?\d+(\.\d+)?\s*$/.test(v)) return Number(v);
  return null;
}

/** str is an attribute as text ('' when absent). */
export function str(v) {
  if (v == null) return '';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return JSON.stringify(v);
}

/** fmtBytes: 512 B, 182 KiB, 3.4 MiB. */
export function fmtBytes(n) {
  if (n == null || !Number.isFinite(n)) return '';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${Math.round(n / 1024)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/** fmtSpan says how long s seconds are: "42 s", "12 min", "5 h 3 min", "3 d 4 h". */
export function fmtSpan(s) {
  if (s == null || !Number.isFinite(s) || s < 0) return '';
  s = Math.floor(s);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) {
    const m = Math.floor((s % 3600) / 60);
    return `${Math.floor(s / 3600)} h${m ? ` ${m} min` : ''}`;
  }
  const h = Math.floor((s % 86400) / 3600);
  return `${Math.floor(s / 86400)} d${h ? ` ${h} h` : ''}`;
}

/** fmtAgo: "just now", "12 s ago", "3 min ago", … for a time in ms ('' for none). */
export function fmtAgo(ms, now = Date.now()) {
  if (!ms) return '';
  const s = Math.max(0, (now - ms) / 1000);
  if (s < 2) return 'just now';
  return `${fmtSpan(s)} ago`;
}

/** fmtWhen: a local date and time for an RFC 3339 text or ms. */
export function fmtWhen(t) {
  const ms = typeof t === 'number' ? t : Date.parse(t || '');
  if (!ms) return str(t);
  return new Date(ms).toLocaleString(undefined, { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
}

/** normChip compares chip names as the same however written: "ESP32-S3" = "esp32s3". */
export function normChip(c) { return str(c).toLowerCase().replace(/[^a-z0-9]/g, ''); }

/** cmpVersion orders versions: "1.10.0" > "1.9.2", "v2" > "1.9", "1.2.0" > "1.2.0-rc1";
 * text that is no version compares as text (digits as numbers). */
export function cmpVersion(a, b) {
  const parse = (v) => {
    const m = /^v?(\d+(?:\.\d+)*)(?:[-+~](.*))?$/i.exec(str(v).trim());
    return m ? { nums: m[1].split('.').map(Number), pre: m[2] || '' } : null;
  };
  const x = parse(a), y = parse(b);
  if (!x || !y) return str(a).localeCompare(str(b), undefined, { numeric: true });
  for (let i = 0; i < Math.max(x.nums.length, y.nums.length); i++) {
    const d = (x.nums[i] || 0) - (y.nums[i] || 0);
    if (d) return Math.sign(d);
  }
  if (x.pre === y.pre) return 0;
  if (!x.pre) return 1; // a release is newer than its pre-release
  if (!y.pre) return -1;
  return x.pre.localeCompare(y.pre, undefined, { numeric: true });
}

/** OTA_TRANSPORTS are the links that can carry an update (DESIGN.md, Updates). */
const OTA_TRANSPORTS = new Set(['ws-listen', 'ws-dial']);

/**
 * fit says whether firmware fw can go to dev:
 *   {ok: false, why} — another chip or project, no $fw, no WebSocket link;
 *   {ok: true, older, same, why} — older: the board runs an older version;
 *   same: it runs this version already (the gateway would skip it).
 */
export function fit(dev, fw) {
  const info = dev.info || {};
  if (!OTA_TRANSPORTS.has(dev.transport)) return { ok: false, why: `its ${dev.transport || 'link'} link cannot carry updates` };
  if (info.fw == null) return { ok: false, why: 'it does not report $fw (no OTA support)' };
  if (info.chip != null && fw.chip && normChip(info.chip) !== normChip(fw.chip)) return { ok: false, why: `another chip: ${str(info.chip)}` };
  if (info.project != null && fw.project && str(info.project) !== fw.project) return { ok: false, why: `another project: ${str(info.project)}` };
  if (info.chip == null || info.project == null) return { ok: false, why: 'it does not report its chip and project' };
  const c = cmpVersion(str(info.fw), fw.version);
  if (c === 0 && str(info.fw) === fw.version) return { ok: true, older: false, same: true, why: `already on ${fw.version}` };
  return { ok: true, older: c < 0, same: false, why: `runs ${str(info.fw)}` };
}

/** updateFor is the newest uploaded firmware of dev's project and chip with a
 * newer version than it runs, or null. */
export function updateFor(dev, firmwares) {
  let best = null;
  for (const fw of firmwares || []) {
    const f = fit(dev, fw);
    if (!f.ok || !f.older) continue;
    if (!best || cmpVersion(fw.version, best.version) > 0) best = fw;
  }
  return best;
}
