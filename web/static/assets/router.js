// router.js — the dashboard's pages by URL hash, so the gateway serves one
// page and needs no routes: #/ (or none) the device cards, #/fleet the fleet,
// #/firmware the firmware and updates (#/firmware/job/J shows job J). A hash
// not starting with "#/" (the skip link's #main) leaves the page as it is.

import { $ } from './dom.js';

const PAGES = { devices: 'Devices', fleet: 'Fleet', firmware: 'Firmware' };

/** The page shown and the rest of its hash (#/firmware/job/J → ['job', 'J']). */
export const route = { page: '', parts: [] };

const enter = {}; // page → (parts, first) when shown or its hash changes
const leave = {}; // page → () when another page is shown
let enabled = false;

/** onPage registers what a page does when it is shown and left. */
export function onPage(name, onEnter, onLeave) {
  enter[name] = onEnter;
  if (onLeave) leave[name] = onLeave;
}

function parse() {
  const hash = location.hash;
  if (!hash.startsWith('#/')) return route.page ? null : { page: 'devices', parts: [] };
  const parts = hash.slice(2).split('/').filter(Boolean).map((p) => { try { return decodeURIComponent(p); } catch { return p; } });
  const page = PAGES[parts[0]] ? parts.shift() : 'devices';
  return { page, parts };
}

function apply(fromUser) {
  if (!enabled) return;
  const next = parse();
  if (!next) return;
  const before = route.page;
  route.page = next.page;
  route.parts = next.parts;
  for (const el of document.querySelectorAll('main > .page')) el.hidden = el.dataset.page !== next.page;
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.dataset.page === next.page) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  document.title = next.page === 'devices' ? 'esp32gw' : `${PAGES[next.page]} · esp32gw`;
  if (before && before !== next.page && leave[before]) leave[before]();
  if (enter[next.page]) enter[next.page](next.parts, before !== next.page);
  // A page picked from the menu: keyboard and screen reader users start at its top.
  if (fromUser && before !== next.page) $('main').focus({ preventScroll: false });
}

/** start shows the page the address asks for, and follows it from now on. */
export function start() {
  enabled = true;
  $('nav').hidden = false;
  apply(false);
}

/** stop hides every page and the menu (the login page is shown instead). */
export function stop() {
  if (enabled && route.page && leave[route.page]) leave[route.page]();
  enabled = false;
  route.page = '';
  $('nav').hidden = true;
  for (const el of document.querySelectorAll('main > .page')) el.hidden = true;
}

/** go shows the page of hash h ("#/firmware/job/J"), as a link would. */
export function go(h) {
  if (location.hash === h) apply(false);
  else location.hash = h;
}

/** replace changes the address to h without a new history entry or a page change. */
export function replace(h) {
  history.replaceState(null, '', h);
  const next = parse();
  if (next) { route.page = next.page; route.parts = next.parts; }
}

addEventListener('hashchange', () => apply(true));
