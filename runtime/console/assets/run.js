// The run page: facts, state history, the plan as a resource diff, the
// policy checks, the live log, diagnostics, outputs, and approve (with the
// policy override where one is allowed) and cancel.
import {call, tenantPath, may, enc, ApiError} from './api.js';
import {h, time, state, table, errorBox, confirm, sleep} from './dom.js';

const terminal = ['applied', 'no_changes', 'failed', 'cancelled', 'timed_out'];

export async function runPage({tenant, id, who, show, title, signal}) {
  const path = tenantPath(tenant, 'runs', id);
  let run = await call(path, {signal});
  const ws = (await call(tenantPath(tenant, 'workspaces'), {signal})).workspaces.find(w => w.name === run.workspace) || {};
  const facts = h('div', {id: 'run-facts'});
  const actions = h('div', {id: 'run-actions', class: 'actions'});
  const result = h('div', {id: 'action-result', 'aria-live': 'polite'});
  const history = h('div', {id: 'run-history'});
  const plan = h('div', {id: 'run-plan'}, h('p', {class: 'muted'}, 'No plan yet.'));
  const policy = h('div', {id: 'run-policy'});
  const logStatus = h('p', {id: 'log-status', class: 'log-status', role: 'status'}, 'Connecting…');
  const log = h('pre', {id: 'run-log', role: 'region', tabindex: '0', 'aria-label': 'Run log', 'data-offset': '0', 'data-reconnects': '0'});
  const diags = h('div', {id: 'run-diagnostics'});
  const outputs = h('div', {id: 'run-outputs'});
  show(title(`Run ${id}`),
    h('p', {}, h('a', {href: `#/t/${enc(tenant)}`}, `Tenant ${tenant}`)),
    facts, actions, result,
    h('h2', {}, 'State history'), history,
    h('h2', {}, 'Plan'), plan,
    h('h2', {}, 'Policy checks'), policy,
    h('h2', {}, 'Log'), logStatus, log,
    h('h2', {}, 'Diagnostics'), diags,
    h('h2', {}, 'Outputs'), outputs);

  let planShown = false;
  const update = async () => {
    facts.replaceChildren(runFacts(run));
    actions.replaceChildren(...runActions(tenant, run, ws, who, path, result, async () => { run = await call(path, {signal}); await update(); }));
    history.replaceChildren(table('State history, oldest first', ['Time', 'From', 'To', 'By', 'Reason'],
      (run.history || []).map(t => [time(t.at), t.from ? t.from.replace('_', ' ') : '—', state(t.to), t.by || '', t.reason || ''])));
    policy.replaceChildren(policyChecks(run));
    diags.replaceChildren(diagnostics(run));
    outputs.replaceChildren(outputTable(run));
    if (!planShown && run.plan_result) {
      planShown = true;
      plan.replaceChildren(await renderedPlan(tenant, run, signal));
    }
  };
  await update();
  followLog(path + '/logs', log, logStatus, signal);
  pollRun();

  // pollRun refreshes the page while the run goes on.
  async function pollRun() {
    while (!terminal.includes(run.state)) {
      await sleep(1500, signal);
      if (signal.aborted) return;
      try {
        const next = await call(path, {signal});
        if (next.updated_at !== run.updated_at || next.state !== run.state) {
          run = next;
          await update();
        }
      } catch {
        // A dropped connection: keep the page and try again.
      }
    }
  }
}

function runFacts(run) {
  const s = run.plan_result && run.plan_result.plan;
  return h('dl', {class: 'facts'},
    h('dt', {}, 'State'), h('dd', {id: 'run-state', 'data-state': run.state}, state(run.state), run.cancel_requested ? ' (cancel requested)' : ''),
    h('dt', {}, 'Workspace'), h('dd', {}, run.workspace),
    h('dt', {}, 'Operation'), h('dd', {}, run.operation),
    h('dt', {}, 'Queued by'), h('dd', {}, run.created_by || '—', ' at ', time(run.created_at)),
    run.message ? [h('dt', {}, 'Message'), h('dd', {}, run.message)] : null,
    run.waiting ? [h('dt', {}, 'Waiting'), h('dd', {}, run.waiting)] : null,
    run.deadline ? [h('dt', {}, 'Deadline'), h('dd', {}, time(run.deadline))] : null,
    run.agent || run.plan_agent ? [h('dt', {}, 'Agent'), h('dd', {}, run.apply_agent || run.plan_agent || run.agent)] : null,
    s ? [h('dt', {}, 'Plan'), h('dd', {id: 'plan-summary'}, summaryText(s))] : null);
}

function summaryText(s) {
  return `${s.import ? `${s.import} to import, ` : ''}${s.add} to add, ${s.change} to change, ${s.destroy} to destroy`;
}

// runActions offers approve and cancel only to a principal the API would
// let do them (the API still checks).
function runActions(tenant, run, ws, who, path, result, refresh) {
  const out = [];
  const own = run.created_by === `${who.kind}:${who.name}`;
  if (run.state === 'planned' && may(who, tenant, 'approver') && run.policy_changed) {
    out.push(h('p', {class: 'notice bad', id: 'policy-changed'},
      `This run cannot be approved: ${run.policy_changed}. Plan the run again: a new plan of workspace ${run.workspace} is checked on the current policies.`));
  } else if (run.state === 'planned' && may(who, tenant, 'approver') && ws.four_eyes && own) {
    out.push(h('p', {class: 'notice', id: 'four-eyes'}, `Workspace ${run.workspace} needs four eyes: you queued this run, so another approver must approve it.`));
  } else if (run.state === 'planned' && may(who, tenant, 'approver')) {
    const v = policyVerdict(run.policy);
    if (v.mandatory.length) {
      out.push(h('p', {class: 'notice bad', id: 'policy-blocked'},
        `This run cannot be approved: it failed the mandatory ${plural(v.mandatory)} ${names(v.mandatory)}. Change the configuration and plan again.`));
    } else if (v.overridable.length) {
      out.push(h('button', {type: 'button', id: 'override-approve', class: 'danger', onclick: async () => {
        const body = [...approveSummary(tenant, run), policyRestated(v.overridable,
          `You override the failed ${plural(v.overridable)} ${names(v.overridable)} (mandatory with override). ` +
          'The override is recorded in the run and in the audit log under your name.')];
        if (!await confirm(`Override policy and apply run ${run.id}?`, body, 'Override the policy and apply')) return;
        await act(() => call(path + '/approve?override_policy=true', {method: 'POST'}), result, refresh);
      }}, 'Override policy and apply…'));
    } else {
      out.push(h('button', {type: 'button', id: 'approve', class: 'primary', onclick: async () => {
        const body = approveSummary(tenant, run);
        if (v.advisory.length) body.push(policyRestated(v.advisory, `The advisory ${plural(v.advisory)} ${names(v.advisory)} failed; nothing is blocked.`));
        if (!await confirm(`Apply run ${run.id}?`, body, 'Apply this plan')) return;
        await act(() => call(path + '/approve', {method: 'POST'}), result, refresh);
      }}, 'Approve and apply…'));
    }
  }
  if (!terminal.includes(run.state) && may(who, tenant, 'operator')) {
    out.push(h('button', {type: 'button', id: 'cancel', class: 'danger', onclick: async () => {
      const body = [h('p', {}, `Cancel ${run.operation} run ${run.id} of workspace ${run.workspace} in tenant ${tenant}, now ${run.state.replace('_', ' ')}.`),
        h('p', {}, ['planning', 'applying'].includes(run.state)
          ? 'Terraform is running: the agent stops it, and the run ends when the agent confirms. An apply stopped midway may leave some changes made.'
          : 'Nothing has been applied by this run; its saved plan is discarded.')];
      if (!await confirm(`Cancel run ${run.id}?`, body, 'Cancel the run')) return;
      await act(() => call(path + '/cancel', {method: 'POST'}), result, refresh);
    }}, 'Cancel run…'));
  }
  return out;
}

// approveSummary restates what applying changes: the counts and every
// destroyed or replaced resource the plan names.
function approveSummary(tenant, run) {
  const s = run.plan_result && run.plan_result.plan;
  const items = [h('p', {}, `This applies the saved plan of run ${run.id} to workspace ${run.workspace} in tenant ${tenant}` +
    (run.operation === 'destroy' ? ', destroying its resources.' : '.'))];
  if (!s) return items.concat(h('p', {}, 'The plan did not report its changes; read the log before applying.'));
  items.push(h('p', {}, h('strong', {}, `Plan: ${summaryText(s)}.`)));
  if ((s.destroyed || []).length) items.push(h('p', {}, 'Destroys:'), h('ul', {}, s.destroyed.map(a => h('li', {}, h('code', {}, a)))));
  if ((s.replaced || []).length) items.push(h('p', {}, 'Replaces (destroys and creates anew):'),
    h('ul', {}, s.replaced.map(r => h('li', {}, h('code', {}, r.address), r.paths && r.paths.length ? ` (forced by ${r.paths.join(', ')})` : ''))));
  return items;
}

// policyVerdict sorts a run's failed policies by enforcement level.
function policyVerdict(check) {
  const failed = ((check || {}).results || []).filter(r => !r.passed);
  const of = level => failed.filter(r => r.enforcement === level);
  return {mandatory: of('mandatory'), overridable: of('mandatory-with-override'), advisory: of('advisory')};
}

const plural = rs => rs.length > 1 ? 'policies' : 'policy';
const names = rs => rs.map(r => r.policy).join(', ');

// policyRestated is a confirmation's paragraph on failed policies, with
// each one's messages.
function policyRestated(failed, text) {
  return h('div', {class: 'notice', id: 'confirm-policy'}, h('p', {}, h('strong', {}, text)),
    h('ul', {}, failed.map(r => h('li', {}, h('code', {}, r.policy), ': ', [...(r.messages || []), r.error].filter(Boolean).join('; ') || 'failed'))));
}

// policyChecks shows how the plan fared against the tenant's policies:
// the outcome, then each policy with its level, verdict and messages.
function policyChecks(run) {
  const c = run.policy;
  const changed = run.policy_changed ? h('p', {class: 'bad', id: 'policy-changed-outcome'},
    'The policies changed since this plan was checked, so its verdict is out of date and approval is refused; plan the run again.') : null;
  if (!c && changed) return h('div', {}, changed, h('p', {class: 'muted', id: 'policy-outcome'}, 'No policy applied to this workspace when it was planned.'));
  if (!c) return h('p', {class: 'muted', id: 'policy-outcome'}, run.plan_result ? 'No policy applies to this workspace.' : 'Checked when the plan ends.');
  const v = policyVerdict(c);
  let outcome;
  if (c.overridden_by) outcome = h('span', {class: 'bad'}, `Failed; ${c.overridden_by} overrode ${names(v.overridable)} and approved the run.`);
  else if (v.mandatory.length) outcome = h('span', {class: 'bad'}, `Failed: approval is blocked by the mandatory ${plural(v.mandatory)} ${names(v.mandatory)}; it cannot be overridden.`);
  else if (v.overridable.length) outcome = h('span', {class: 'bad'}, `Failed: approval is blocked by ${names(v.overridable)}; an approver may override it.`);
  else if (c.blocked) outcome = h('span', {class: 'bad'}, 'Failed: approval is blocked.');
  else if (v.advisory.length) outcome = h('span', {}, `Advisory ${plural(v.advisory)} ${names(v.advisory)} failed; approval is not blocked.`);
  else outcome = h('span', {}, 'Every policy passed.');
  const rows = (c.results || []).map(r => [h('code', {}, r.policy), `v${r.version}`, r.enforcement,
    r.passed ? h('span', {class: 'ok'}, 'passed') : h('strong', {class: 'bad'}, 'FAILED'),
    h('div', {}, (r.messages || []).map(m => h('div', {}, m)), r.error ? h('div', {class: 'bad'}, `error: ${r.error}`) : null,
      (r.warnings || []).map(w => h('div', {class: 'muted'}, `warning: ${w}`)))]);
  return h('div', {}, changed,
    h('p', {id: 'policy-outcome', 'data-blocked': String(!!c.blocked)}, outcome, ' Checked ', time(c.checked_at), '.'),
    table('Policy checks of the plan', ['Policy', 'Version', 'Enforcement', 'Result', 'Messages'], rows));
}

// act does what was confirmed, says how it went and takes the focus
// there (the button pressed may be gone).
async function act(fn, result, refresh) {
  try {
    await fn();
    result.replaceChildren(h('p', {class: 'notice', tabindex: '-1'}, 'Done.'));
  } catch (err) {
    result.replaceChildren(errorBox(err));
    result.firstChild.setAttribute('tabindex', '-1');
  }
  await refresh();
  result.firstChild.focus();
}

// renderedPlan is the plan as the CLI prints it (planrender, rendered by
// the server side of the console), its lines marked by action.
async function renderedPlan(tenant, run, signal) {
  try {
    const text = await call(`/ui/render/tenants/${enc(tenant)}/runs/${enc(run.id)}/plan`, {signal});
    const pre = h('pre', {id: 'plan-text', tabindex: '0', 'aria-label': 'Plan'});
    for (const line of text.split('\n')) {
      const t = line.trimStart();
      let cls = '';
      if (/^(-\/\+|\+\/-)\s/.test(t)) cls = 'line-chg';
      else if (t.startsWith('+ ')) cls = 'line-add';
      else if (t.startsWith('- ')) cls = 'line-del';
      else if (t.startsWith('~ ')) cls = 'line-chg';
      if (/^# .*(replaced|destroyed|tainted)/.test(t)) cls = 'line-note line-del';
      pre.append(cls ? h('span', {class: cls}, line) : line, '\n');
    }
    return pre;
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return h('p', {class: 'muted'}, err.message);
    return errorBox(err);
  }
}

function diagnostics(run) {
  const all = [...((run.plan_result || {}).diagnostics || []), ...((run.apply_result || {}).diagnostics || [])];
  return table('Diagnostics', ['Severity', 'Summary', 'Where', 'Detail'],
    all.map(d => [h('span', {class: d.severity === 'error' ? 'bad' : ''}, d.severity), d.summary,
      d.file ? `${d.file}${d.line ? ` line ${d.line}` : ''}` : (d.address || ''), d.detail || '']), 'None.');
}

function outputTable(run) {
  const outs = (run.apply_result || run.plan_result || {}).outputs || {};
  return table('Outputs', ['Name', 'Value'], Object.keys(outs).sort().map(k => [h('code', {}, k),
    outs[k].sensitive ? h('span', {class: 'muted'}, '(sensitive value withheld)') : h('code', {}, JSON.stringify(outs[k].value))]),
  run.state === 'applied' ? 'The configuration has no outputs.' : terminal.includes(run.state) ? 'None.' : 'None yet.');
}

// followLog appends the run's log as it is written. It reads from the
// offset it has reached, so a dropped connection resumes where it broke:
// no line is lost or shown twice.
async function followLog(path, pre, status, signal) {
  let offset = 0;
  let delay = 500;
  let drops = 0;
  while (!signal.aborted) {
    try {
      const c = await call(`${path}?offset=${offset}`, {signal});
      if (c.text) pre.append(c.text);
      offset = c.next_offset;
      pre.dataset.offset = String(offset);
      delay = 500;
      if (c.done) {
        status.textContent = 'The run has ended; this is its whole log.';
        pre.dataset.done = 'true';
        return;
      }
      status.textContent = drops ? `Following (resumed after ${drops} dropped connection${drops > 1 ? 's' : ''}).` : 'Following the log as it is written.';
      if (c.next_offset > c.offset) continue; // there may be more at once
      await sleep(1000, signal);
    } catch (err) {
      if (signal.aborted) return;
      if (err instanceof ApiError && err.status < 500) {
        status.replaceChildren(errorBox(err));
        return;
      }
      drops++;
      pre.dataset.reconnects = String(drops);
      status.textContent = `Connection lost (${err.message}); resuming from byte ${offset} in ${delay / 1000} s.`;
      await sleep(delay, signal);
      delay = Math.min(2 * delay, 10000);
    }
  }
}
