// dom.js — the few DOM helpers every dashboard module uses.

export const $ = (id) => document.getElementById(id);

/** h builds an element: h('button', {class: 'x', onclick: f}, 'text', child). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) if (c != null) el.append(c);
  return el;
}

/** setText and setAttr touch the DOM only when something changes. */
export function setText(el, s) { if (el.textContent !== s) el.textContent = s; }
export function setAttr(el, k, v) { if (el.getAttribute(k) !== v) el.setAttribute(k, v); }

/** domID turns any text into something safe inside an element id. */
export function domID(s) { return s.replace(/[^a-zA-Z0-9_-]/g, (c) => `_${c.charCodeAt(0).toString(16)}`); }
