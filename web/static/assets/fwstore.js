// fwstore.js — the firmware images uploaded to the gateway (GET
// /api/firmware), shared by the Fleet page ("update available") and the
// Firmware page. Whoever changes the list calls loadFirmware again.

import { get } from './api.js';

export const firmware = {
  list: [],       // [{sha256, size, chip, project, version, idf, built}], newest version first
  loaded: false,
  error: '',      // why the last load failed ('' when it did not)
  missing: false, // the gateway has no firmware API (404)
};

const listeners = new Set();
/** onFirmware calls fn after every load. */
export function onFirmware(fn) { listeners.add(fn); }

let inflight = null;

/** loadFirmware fetches the list again (one request at a time). */
export function loadFirmware() {
  if (inflight) return inflight;
  inflight = (async () => {
    try {
      const body = await get('/api/firmware');
      firmware.list = Array.isArray(body) ? body.filter((f) => f && typeof f.sha256 === 'string') : [];
      firmware.error = '';
      firmware.missing = false;
    } catch (e) {
      firmware.missing = e.status === 404;
      firmware.error = e.status === 404 ? '' : e.message;
      if (firmware.missing) firmware.list = [];
    }
    firmware.loaded = true;
    inflight = null;
    for (const fn of listeners) fn();
  })();
  return inflight;
}
