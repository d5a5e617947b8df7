// The ops API as the console calls it: same origin, the credential in
// sessionStorage (gone with the tab), JSON errors as ApiError.

const KEY = 'bote-ops-credential';

export class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `the ops API answered ${status}`);
    this.status = status;
    this.code = e.code || '';
    this.reason = e.reason || '';
    this.requestId = e.request_id || '';
  }
}

export function credential() { return sessionStorage.getItem(KEY) || ''; }
export function setCredential(v) { v ? sessionStorage.setItem(KEY, v) : sessionStorage.removeItem(KEY); }

// call sends a request and returns the decoded JSON (or text for
// text/plain). A failed connection throws a TypeError (fetch's).
export async function call(path, {method = 'GET', body, contentType, signal} = {}) {
  const headers = {Authorization: 'Bearer ' + credential(), Accept: 'application/json'};
  if (contentType) headers['Content-Type'] = contentType;
  const resp = await fetch(path, {method, headers, body, signal, cache: 'no-store'});
  const type = resp.headers.get('Content-Type') || '';
  const data = type.startsWith('application/json') ? await resp.json().catch(() => null) : await resp.text();
  if (!resp.ok) throw new ApiError(resp.status, typeof data === 'object' ? data : null);
  return data;
}

export const enc = encodeURIComponent;
export const tenantPath = (tenant, ...rest) => ['/v1/tenants', enc(tenant), ...rest.map(enc)].join('/');

// Roles are a ladder (runtime/operatorauth): reader < operator < approver; admins hold every role.
const ladder = {reader: 1, operator: 2, approver: 3};
export function may(who, tenant, role) {
  if (!who) return false;
  if (who.admin) return true;
  const have = (who.tenants || {})[tenant];
  return (ladder[have] || 0) >= ladder[role];
}
