// commands.js — sending commands over the WebSocket and showing their
// answers (ack or error, or none in time), and which controls a device gets.

import { state, markDevice } from './model.js';
import { send } from './connection.js';

const COMMAND_TIMEOUT_MS = 5000; // the gateway answers within 2 s; allow for a slow link
const DONE_SHOWN_MS = 2500;      // how long "done" stays next to a control

let cmdSeq = 0;   // command ids
let cmdStamp = 0; // orders command states, so a row of buttons shows the latest
const pending = new Map(); // command id → {dev, key, timer}

function setCmd(dev, key, st, text) {
  dev.cmd.set(key, { state: st, text, seq: ++cmdStamp, until: st === 'done' ? Date.now() + DONE_SHOWN_MS : 0 });
  markDevice(dev);
}

/** sendCommand sends (label, value) to dev; key names the control that shows the answer. */
export function sendCommand(dev, key, label, value) {
  const id = `c${cmdSeq + 1}`;
  if (!send({ type: 'command', id, device: dev.id, label, value })) {
    setCmd(dev, key, 'failed', 'failed: not connected to the gateway');
    return;
  }
  cmdSeq++;
  const timer = setTimeout(() => {
    if (pending.delete(id)) setCmd(dev, key, 'failed', 'failed: no answer from the gateway');
  }, COMMAND_TIMEOUT_MS);
  pending.set(id, { dev, key, timer });
  setCmd(dev, key, 'pending', 'pending…');
}

/** onAnswer handles an ack or error frame. */
export function onAnswer(m) {
  const p = pending.get(m.id);
  if (!p) return;
  pending.delete(m.id);
  clearTimeout(p.timer);
  if (m.type === 'ack') setCmd(p.dev, p.key, 'done', 'done');
  else setCmd(p.dev, p.key, 'failed', `failed: ${m.error || 'unknown error'}`);
}

/** failPending fails every command still waiting for its answer. */
export function failPending(why) {
  for (const [id, p] of pending) {
    clearTimeout(p.timer);
    setCmd(p.dev, p.key, 'failed', `failed: ${why}`);
    pending.delete(id);
  }
}

/** plan decides which controls a device gets (none for a viewer): a switch on each "onoff"
 * label when the board takes toggle or on+off, a button for every other
 * allowed command (sent with the device's only state label, if it has one). */
export function plan(dev) {
  // A viewer (a read-only login) may command nothing: no switches, no buttons.
  if (state.role === 'viewer') return { switches: new Set(), buttons: [], buttonLabel: '', explicit: false };
  const has = (c) => dev.commands.includes(c);
  const canSwitch = has('toggle') || (has('on') && has('off'));
  const stateLabels = [...dev.labels.values()].filter((l) => l.kind === 'onoff');
  const switches = canSwitch ? stateLabels : [];
  const used = switches.length ? ['toggle', 'on', 'off'] : [];
  const buttons = dev.commands.filter((c) => !used.includes(c));
  let buttonLabel = '';
  if (stateLabels.length === 1) buttonLabel = stateLabels[0].name;
  else if (dev.labels.size === 1) buttonLabel = [...dev.labels.keys()][0];
  return { switches: new Set(switches), buttons, buttonLabel, explicit: has('on') && has('off') };
}
