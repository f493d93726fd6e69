// dialogs.js — the native <dialog>s of the Fleet and Firmware pages (focus
// stays inside while open, Escape closes, focus returns to what opened
// them), a confirm dialog in place of window.confirm, and copying text.

import { $ } from './dom.js';

for (const d of document.querySelectorAll('dialog')) {
  d.addEventListener('click', (e) => {
    if (e.target.closest('[data-close]')) d.close('cancel');
    else if (e.target === d) d.close('cancel'); // a click on the backdrop
  });
}

/** open shows dialog d modally and returns focus to the opener when it closes. */
export function open(d, focus) {
  const opener = document.activeElement;
  d.addEventListener('close', () => { if (opener && opener.isConnected) opener.focus(); }, { once: true });
  d.showModal();
  if (focus) focus.focus();
}

/** confirm asks a yes/no question; resolves true for OK. */
export function confirm(text, ok = 'OK', title = 'Are you sure?') {
  const d = $('confirm-dialog');
  $('confirm-title').textContent = title;
  $('confirm-text').textContent = text;
  $('confirm-ok').textContent = ok;
  d.returnValue = '';
  return new Promise((resolve) => {
    d.addEventListener('close', () => resolve(d.returnValue === 'ok'), { once: true });
    open(d, d.querySelector('button[value="cancel"]'));
  });
}

/** copyText puts s on the clipboard: the Clipboard API where the page may
 * use it (https, localhost), else a selected textarea and execCommand. */
export async function copyText(s, within) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(s);
      return true;
    }
  } catch { /* fall back below */ }
  const ta = document.createElement('textarea');
  ta.value = s;
  ta.setAttribute('readonly', '');
  ta.style.position = 'fixed';
  ta.style.opacity = '0';
  (within || document.body).append(ta);
  ta.select();
  let ok = false;
  try { ok = document.execCommand('copy'); } catch { ok = false; }
  ta.remove();
  return ok;
}
