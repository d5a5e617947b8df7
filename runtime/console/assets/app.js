// The console's entry point: sign-in, the router and the pages other than
// the run page (run.js).
import {call, credential, setCredential, tenantPath, may, enc, ApiError} from './api.js';
import {h, time, ago, state, table, errorBox, sleep} from './dom.js';
import {runPage} from './run.js';

const main = document.getElementById('main');
let who = null;       // GET /v1/whoami: the principal and its grants
let current = null;   // AbortController of the page on screen
let focusHeading = false; // the next page shown takes the focus (after navigation)

// A session handed over in the URL (opsbot ui: #session=SECRET, or
// #session=SECRET&/t/contoso/runs/run-... for a page) goes to
// sessionStorage and leaves the address bar and history.
const handed = /^#session=([^&]*)(?:&(\/.*))?$/.exec(location.hash);
if (handed) {
  setCredential(decodeURIComponent(handed[1]));
  history.replaceState(null, '', location.pathname + '#' + (handed[2] || '/'));
}

document.getElementById('signout').addEventListener('click', () => {
  setCredential('');
  who = null;
  route();
});
window.addEventListener('hashchange', () => route(true));

function show(...children) {
  main.replaceChildren(...children.flat(Infinity).filter(c => c !== null && c !== undefined && c !== false));
  if (focusHeading) main.querySelector('h1')?.focus();
  focusHeading = false;
}

function title(text) {
  document.title = `${text} · bote ops`;
  return h('h1', {tabindex: '-1'}, text);
}

async function route(moveFocus) {
  const hash = location.hash || '#/';
  if (!hash.startsWith('#/')) return; // an in-page link (skip link)
  if (current) current.abort();
  current = new AbortController();
  const signal = current.signal;
  focusHeading = moveFocus;
  if (!credential()) return signIn();
  try {
    if (!who) {
      who = await call('/v1/whoami');
      const grants = who.admin ? 'admin' : Object.entries(who.tenants || {}).map(([t, r]) => `${t}=${r}`).join(', ') || 'no grants';
      document.getElementById('who').textContent = `${who.kind}:${who.name} (${grants})`;
      document.getElementById('signout').hidden = false;
    }
    const [path, query] = hash.slice(1).split('?');
    const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
    const params = new URLSearchParams(query || '');
    if (parts.length === 0) await tenantsPage(signal);
    else if (parts[0] === 'audit') await auditPage(params, signal);
    else if (parts[0] === 't' && parts.length === 2) await tenantPage(parts[1], signal);
    else if (parts[0] === 't' && parts[2] === 'agents') await fleetPage(parts[1], signal);
    else if (parts[0] === 't' && parts[2] === 'runs' && parts[3]) await runPage({tenant: parts[1], id: parts[3], who, show, title, signal});
    else show(title('Not found'), h('p', {}, 'No such page. ', h('a', {href: '#/'}, 'Back to the tenants.')));
  } catch (err) {
    if (signal.aborted) return;
    if (err instanceof ApiError && err.status === 401) {
      setCredential('');
      who = null;
      return signIn('The ops server refused the credential.');
    }
    show(title('Something went wrong'), errorBox(err));
  }
}

function signIn(problem) {
  document.getElementById('signout').hidden = true;
  document.getElementById('who').textContent = '';
  const input = h('input', {id: 'credential', type: 'password', autocomplete: 'off', required: true, spellcheck: 'false'});
  show(title('Sign in'),
    problem ? h('p', {class: 'error', role: 'alert'}, problem) : null,
    h('p', {}, 'Give your operator API key (obk_…) or OAuth2 access token. It stays in this tab only. ',
      'On your own machine, ', h('code', {}, 'opsbot ui'), ' signs you in with your opsbot configuration instead.'),
    h('form', {class: 'stack', onsubmit: e => { e.preventDefault(); setCredential(input.value.trim()); route(true); }},
      h('label', {for: 'credential'}, 'API key or access token', input),
      h('div', {}, h('button', {type: 'submit', class: 'primary'}, 'Sign in'))));
  focusHeading = false;
  input.focus();
}

// tenantsOf lists the tenants the principal may see (GET /v1/tenants);
// on a server without runs (503), or one older than /v1/tenants (404),
// its grants and for an admin every tenant with agents.
async function tenantsOf(signal) {
  const agents = (await call('/v1/agents', {signal})).agents;
  try {
    return {tenants: (await call('/v1/tenants', {signal})).tenants, agents};
  } catch (err) {
    if (!(err instanceof ApiError) || (err.status !== 503 && err.status !== 404)) throw err;
  }
  const names = new Set(Object.keys(who.tenants || {}));
  if (who.admin) for (const a of agents) names.add(a.tenant);
  return {tenants: [...names].sort().map(id => ({id, role: who.admin ? 'approver' : who.tenants[id]})), agents};
}

async function tenantsPage(signal) {
  const {tenants, agents} = await tenantsOf(signal);
  const rows = tenants.map(({id, role}) => {
    const mine = agents.filter(a => a.tenant === id);
    const online = mine.filter(a => a.state === 'online').length;
    return [h('a', {href: `#/t/${enc(id)}`}, id), who.admin ? 'admin' : role,
      h('a', {href: `#/t/${enc(id)}/agents`}, `${online} of ${mine.length} online`), h('a', {href: `#/audit?tenant=${enc(id)}`}, 'audit log')];
  });
  show(title('Tenants'),
    table('Tenants you may see', ['Tenant', 'Your role', 'Agents', 'Audit'], rows, 'You hold no role in any tenant of this server.'));
}

const locking = ['planning', 'planned', 'approved', 'applying', 'needs_attention'];

function runLink(tenant, r) {
  return h('a', {href: `#/t/${enc(tenant)}/runs/${enc(r.id)}`}, r.id);
}

async function tenantPage(tenant, signal) {
  const parts = await tenantParts(tenant, signal);
  const [fleet, workspaces, drift, recent] = parts.map(p => h('div', {}, p));
  drift.id = 'workspace-drift';
  show(title(`Tenant ${tenant}`),
    fleet,
    h('h2', {}, 'Workspaces'), workspaces,
    h('h2', {}, 'Drift'), drift,
    may(who, tenant, 'operator') ? operatorForms(tenant, parts.workspaces) : null,
    h('h2', {}, 'Recent runs'), recent);
  keepFresh(signal, async () => {
    const next = await tenantParts(tenant, signal);
    [fleet, workspaces, drift, recent].forEach((el, i) => replaceUnlessFocused(el, next[i]));
  });
}

// tenantParts are the tenant page's parts that change: the fleet line,
// the workspaces with their last run, lock and queue, their drift, and
// the recent runs.
async function tenantParts(tenant, signal) {
  const [ws, runs, agents, drift] = await Promise.all([
    call(tenantPath(tenant, 'workspaces'), {signal}),
    call(tenantPath(tenant, 'runs') + '?limit=200', {signal}),
    call('/v1/agents?tenant=' + enc(tenant), {signal}),
    driftOf(tenant, signal),
  ]);
  const wsRows = ws.workspaces.map(w => {
    const mine = runs.runs.filter(r => r.workspace === w.name); // newest first
    const last = mine[0];
    const holder = mine.find(r => locking.includes(r.state));
    const queued = mine.filter(r => r.state === 'queued').reverse();
    return [w.name,
      last ? h('span', {}, state(last.state), ' ', runLink(tenant, last), ' ', time(last.created_at)) : h('span', {class: 'muted'}, 'no runs'),
      holder ? h('span', {}, runLink(tenant, holder), ' (', holder.state.replace('_', ' '), ')') : h('span', {class: 'muted'}, 'free'),
      queued.length ? h('span', {}, `${queued.length}: `, queued.map((r, i) => [i ? ', ' : '', runLink(tenant, r)])) : h('span', {class: 'muted'}, 'empty'),
      [w.four_eyes ? 'four-eyes' : '', w.auto_apply ? 'auto-apply' : ''].filter(Boolean).join(', ') || '—'];
  });
  const runRows = runs.runs.slice(0, 50).map(r => [runLink(tenant, r), r.workspace, r.operation, state(r.state), r.created_by || '', time(r.created_at)]);
  const online = agents.agents.filter(a => a.state === 'online').length;
  const parts = [
    h('p', {}, h('a', {href: `#/t/${enc(tenant)}/agents`}, `Agent fleet: ${online} of ${agents.agents.length} online`), ' · ',
      h('a', {href: `#/audit?tenant=${enc(tenant)}`}, 'Audit log')),
    table(`Workspaces of ${tenant}`, ['Workspace', 'Last run', 'Lock held by', 'Queue', 'Options'], wsRows, 'No workspaces yet.'),
    driftTable(tenant, ws.workspaces, drift),
    table(`Runs of ${tenant}, newest first`, ['Run', 'Workspace', 'Operation', 'State', 'Queued by', 'Queued'], runRows, 'No runs yet.')];
  parts.workspaces = ws.workspaces;
  return parts;
}

// driftOf is the tenant's drift records (GET /v1/tenants/{t}/drift, as
// `opsbot drift` lists them), or null from a server without drift
// detection (404, 503).
async function driftOf(tenant, signal) {
  try {
    return (await call(tenantPath(tenant, 'drift'), {signal})).workspaces || [];
  } catch (err) {
    if (err instanceof ApiError && (err.status === 404 || err.status === 503)) return null;
    throw err;
  }
}

// driftTable shows each workspace's drift: the latest check's verdict and
// time, the schedule and next check, and what drifted (as `opsbot drift
// show`: each resource's address, actions and differing attributes).
function driftTable(tenant, workspaces, records) {
  if (records === null) return h('p', {class: 'muted'}, 'This ops server does not detect drift.');
  const rows = workspaces.map(w => {
    const d = records.find(r => r.workspace === w.name) || {status: 'unknown'};
    const sched = d.schedule && (d.schedule.cron ? `cron ${d.schedule.cron} (UTC)` : d.schedule.every ? `every ${d.schedule.every}` : '');
    const status = d.status === 'drifted' ? h('strong', {class: 'bad'}, 'drifted')
      : d.status === 'clean' ? h('span', {class: 'ok'}, 'no drift')
        : h('span', {class: 'muted'}, d.cleared ? `unknown (cleared by ${d.cleared})` : d.checked_at ? 'unknown' : 'not checked yet');
    const resources = (d.resources || []).map(r => h('li', {}, h('code', {}, r.address), ` (${(r.actions || []).join(', ')})`,
      (r.attributes || []).length ? h('ul', {}, r.attributes.map(a => h('li', {}, h('code', {}, a.name), ': ',
        h('code', {}, JSON.stringify(a.before)), ' → ', h('code', {}, JSON.stringify(a.after))))) : null));
    const what = [resources.length ? h('ul', {class: 'drifted'}, resources) : null,
      d.more_resources ? h('p', {}, `and ${d.more_resources} more (see the check's plan)`) : null,
      d.last_error ? h('p', {class: 'bad'}, `last check failed: ${d.last_error}`) : null];
    return [w.name, status,
      d.checked_at ? h('span', {}, time(d.checked_at), d.check_run ? [' by ', runLink(tenant, {id: d.check_run})] : null) : h('span', {class: 'muted'}, 'never'),
      sched || h('span', {class: 'muted'}, 'no schedule'),
      d.next_check ? time(d.next_check) : h('span', {class: 'muted'}, '—'),
      what.some(Boolean) ? what : '—'];
  });
  return table(`Drift of the workspaces of ${tenant}`, ['Workspace', 'Drift', 'Last checked', 'Schedule', 'Next check', 'What drifted'], rows, 'No workspaces yet.');
}

// keepFresh calls refresh every 5 s until the page changes; a failed
// round (a dropped connection) waits for the next.
async function keepFresh(signal, refresh) {
  while (!signal.aborted) {
    await sleep(5000, signal);
    if (signal.aborted) return;
    try { await refresh(); } catch { /* next round */ }
  }
}

// replaceUnlessFocused updates a part of the page, unless the keyboard
// focus is in it (it would be lost).
function replaceUnlessFocused(el, ...children) {
  if (!el.contains(document.activeElement)) el.replaceChildren(...children.flat(Infinity));
}

// operatorForms create a workspace and queue a plan from a bundle (the
// .tar.gz `opsbot plan` packs; `opsbot plan --dir` does both at once).
function operatorForms(tenant, workspaces) {
  const out = h('div', {id: 'form-result', 'aria-live': 'polite'});
  const name = h('input', {id: 'ws-name', required: true, pattern: '[a-z0-9][a-z0-9-]*', autocomplete: 'off'});
  const desc = h('input', {id: 'ws-desc', autocomplete: 'off'});
  const four = h('input', {id: 'ws-four-eyes', type: 'checkbox'});
  const create = h('form', {class: 'inline', 'aria-labelledby': 'create-ws-title', onsubmit: async e => {
    e.preventDefault();
    try {
      await call(tenantPath(tenant, 'workspaces'), {method: 'POST', contentType: 'application/json',
        body: JSON.stringify({name: name.value, description: desc.value, four_eyes: four.checked})});
      route(true);
    } catch (err) { out.replaceChildren(errorBox(err)); }
  }},
  h('label', {for: 'ws-name'}, 'Name', name), h('label', {for: 'ws-desc'}, 'Description', desc),
  h('label', {for: 'ws-four-eyes'}, 'Four-eyes approval', four), h('button', {type: 'submit', id: 'ws-submit'}, 'Create workspace'));

  const wsSel = h('select', {id: 'plan-ws', required: true}, workspaces.map(w => h('option', {value: w.name}, w.name)));
  const op = h('select', {id: 'plan-op'}, h('option', {value: 'plan'}, 'plan'), h('option', {value: 'destroy'}, 'destroy plan'));
  const file = h('input', {id: 'plan-bundle', type: 'file', accept: '.tar.gz,.tgz,application/gzip', required: true});
  const msg = h('input', {id: 'plan-message', autocomplete: 'off'});
  const plan = h('form', {class: 'inline', onsubmit: async e => {
    e.preventDefault();
    try {
      const q = new URLSearchParams({op: op.value});
      if (msg.value) q.set('message', msg.value);
      const run = await call(tenantPath(tenant, 'workspaces', wsSel.value, 'runs') + '?' + q, {method: 'POST', contentType: 'application/gzip', body: file.files[0]});
      location.hash = `#/t/${enc(tenant)}/runs/${enc(run.id)}`;
    } catch (err) { out.replaceChildren(errorBox(err)); }
  }},
  h('label', {for: 'plan-ws'}, 'Workspace', wsSel), h('label', {for: 'plan-op'}, 'Operation', op),
  h('label', {for: 'plan-bundle'}, 'Configuration bundle (.tar.gz)', file), h('label', {for: 'plan-message'}, 'Message', msg),
  h('button', {type: 'submit', id: 'plan-submit'}, 'Queue plan'));
  return [h('h2', {id: 'create-ws-title'}, 'New workspace'), create,
    workspaces.length ? [h('h2', {}, 'Queue a plan'), plan] : null, out];
}

async function fleetPage(tenant, signal) {
  const list = await call('/v1/agents?tenant=' + enc(tenant), {signal});
  const body = h('div', {}, fleetTable(tenant, list));
  show(title(`Agent fleet of ${tenant}`),
    h('p', {}, h('a', {href: `#/t/${enc(tenant)}`}, `Back to tenant ${tenant}`)),
    list.deployed_version ? h('p', {}, `Deployed agent version: ${list.deployed_version}`) : null,
    body);
  keepFresh(signal, async () => replaceUnlessFocused(body, fleetTable(tenant, await call('/v1/agents?tenant=' + enc(tenant), {signal}))));
}

function fleetTable(tenant, list) {
  const rows = list.agents.map(a => [a.name, state(a.state),
    a.last_seen ? h('span', {}, time(a.last_seen), h('span', {class: 'muted'}, ` (${ago(a.last_seen)})`)) : h('span', {class: 'muted'}, 'never'),
    a.capacity ? String(a.capacity) : '—',
    (a.running || []).length ? h('span', {}, `${a.running.length}: `, a.running.map((id, i) => [i ? ', ' : '', h('a', {href: `#/t/${enc(tenant)}/runs/${enc(id)}`}, id)])) : '0',
    a.version || '—',
    a.outdated ? h('span', {class: 'outdated'}, `out of date (deployed ${list.deployed_version})`) : (list.deployed_version ? 'current' : '—'),
    a.terraform_version || '—']);
  return table(`Agents of ${tenant}`, ['Agent', 'State', 'Last heartbeat', 'Capacity', 'Running', 'Version', 'Up to date', 'Terraform'], rows, 'No agents registered.');
}

async function auditPage(params, signal) {
  const q = new URLSearchParams();
  for (const k of ['tenant', 'principal', 'before']) if (params.get(k)) q.set(k, params.get(k));
  if (params.get('since')) q.set('since', sinceTime(params.get('since')));
  q.set('limit', '100');
  const page = await call('/v1/audit?' + q, {signal});
  const rows = page.records.map(r => [time(r.time), r.tenant || '—', r.principal || '—', r.action,
    h('code', {}, r.object), h('span', {class: r.result === 'ok' ? '' : 'bad'}, r.result + (r.status ? ` ${r.status}` : '')), r.request_id || '', r.detail || '']);
  const field = (id, label, value) => h('label', {for: id}, label, h('input', {id, name: id.replace('audit-', ''), value: value || '', autocomplete: 'off'}));
  const form = h('form', {class: 'inline', onsubmit: e => {
    e.preventDefault();
    const f = new URLSearchParams();
    for (const el of e.target.querySelectorAll('input')) if (el.value) f.set(el.name, el.value);
    location.hash = '#/audit?' + f;
  }}, field('audit-tenant', 'Tenant', params.get('tenant')), field('audit-principal', 'Principal', params.get('principal')),
  field('audit-since', 'Since (24h, 7d or a time)', params.get('since')), h('button', {type: 'submit'}, 'Filter'));
  let older = null;
  if (page.more && page.records.length) {
    const next = new URLSearchParams(params);
    next.set('before', page.records[page.records.length - 1].id);
    older = h('p', {}, h('a', {href: '#/audit?' + next}, 'Older records'));
  }
  show(title('Audit log'), form,
    table('Audit records, newest first', ['Time', 'Tenant', 'Principal', 'Action', 'Object', 'Result', 'Request', 'Detail'], rows, 'No records.'), older);
}

// sinceTime turns "24h" or "7d" into the RFC 3339 time the API takes.
function sinceTime(v) {
  const m = /^(\d+)([mhd])$/.exec(v.trim());
  if (!m) return v.trim();
  const unit = {m: 60e3, h: 3600e3, d: 86400e3}[m[2]];
  return new Date(Date.now() - Number(m[1]) * unit).toISOString();
}

// Last, once every binding of this module is initialised.
route(false);
