// Small DOM helpers: elements are built, never parsed from strings, so
// nothing the API returns can become markup.

export function h(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'class') e.className = v;
    else e.setAttribute(k, v === true ? '' : v);
  }
  append(e, children);
  return e;
}

export function append(e, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

const local = new Intl.DateTimeFormat(undefined, {year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit', timeZoneName: 'short'});

// utc is an ISO time as "2026-12-06 07:30:00 UTC".
export function utc(iso) {
  return new Date(iso).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
}

// time shows an ISO time in the viewer's zone; the UTC value is its title.
export function time(iso) {
  if (!iso) return h('span', {class: 'muted'}, '—');
  return h('time', {datetime: iso, title: utc(iso)}, local.format(new Date(iso)));
}

export function ago(iso) {
  if (!iso) return '';
  const s = Math.round((Date.now() - new Date(iso).getTime()) / 1000);
  if (s < 60) return `${Math.max(s, 0)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

export function state(s) { return h('span', {class: `state state-${s}`}, s.replace('_', ' ')); }

export function table(caption, headers, rows, empty = 'None.') {
  if (!rows.length) return h('p', {class: 'muted'}, empty);
  return h('table', {},
    h('caption', {}, caption),
    h('thead', {}, h('tr', {}, headers.map(x => h('th', {scope: 'col'}, x)))),
    h('tbody', {}, rows.map(r => h('tr', {}, r.map(c => h('td', {}, c))))));
}

export function errorBox(err) {
  const msg = err && err.message ? err.message : String(err);
  return h('p', {class: 'error', role: 'alert'}, msg, err && err.requestId ? ` (request id ${err.requestId})` : '');
}

// confirm opens the confirmation dialog; resolves true when confirmed.
export function confirm(title, body, okLabel) {
  const d = document.getElementById('confirm');
  document.getElementById('confirm-title').textContent = title;
  const b = document.getElementById('confirm-body');
  b.replaceChildren(...[body].flat());
  document.getElementById('confirm-ok').textContent = okLabel;
  return new Promise(resolve => {
    d.addEventListener('close', () => resolve(d.returnValue === 'ok'), {once: true});
    d.returnValue = '';
    d.showModal();
    document.getElementById('confirm-back').focus();
  });
}

// sleep resolves after ms, or at once when signal aborts.
export function sleep(ms, signal) {
  return new Promise(resolve => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, {once: true});
  });
}
