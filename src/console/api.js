// The API as the console uses it: same-origin fetch with the session cookie; a state change
// carries the session's CSRF token (kept in this tab's sessionStorage, never the token itself).

const CSRF_KEY = 'ferry.csrf';

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem && typeof problem === 'object' && problem.detail ? problem.detail : `the server answered HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

let onSignedOut = () => {};
export function whenSignedOut(fn) {
  onSignedOut = fn;
}

/** `{data, headers}` of a request; a problem answer throws an ApiError with the server's sentence. */
export async function call(method, path, body) {
  const headers = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && method !== 'HEAD') {
    const csrf = sessionStorage.getItem(CSRF_KEY);
    if (csrf) headers['x-ferry-csrf'] = csrf;
  }
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
    cache: 'no-store',
  });
  const text = res.status === 204 ? '' : await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = text;
  }
  if (!res.ok) {
    if (res.status === 401 && path !== '/v1/session') onSignedOut();
    throw new ApiError(res.status, data);
  }
  return { data, headers: res.headers };
}

export const api = async (method, path, body) => (await call(method, path, body)).data;

/**
 * Every item of a paged list (GET /v1/migrations, GET /v1/tenants): 500 a page, following
 * `X-Ferry-Next-Cursor`, at most `maxPages` pages (a page that needs more than that shows what it has).
 */
export async function listAll(path, maxPages = 20) {
  const [base, search = ''] = path.split('?');
  const q = new URLSearchParams(search);
  q.set('limit', '500');
  const all = [];
  for (let page = 0; page < maxPages; page++) {
    const { data, headers } = await call('GET', `${base}?${q}`);
    all.push(...data);
    const next = headers.get('x-ferry-next-cursor');
    if (!next) break;
    q.set('cursor', next);
  }
  return all;
}

export async function signIn(token) {
  const me = await api('POST', '/v1/session', { token });
  sessionStorage.setItem(CSRF_KEY, me.csrf);
  return me;
}

/** Who the session is, or null when not signed in. */
export async function whoAmI() {
  try {
    const me = await api('GET', '/v1/session');
    if (me.csrf) sessionStorage.setItem(CSRF_KEY, me.csrf);
    return me;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return null;
    throw err;
  }
}

export async function signOut() {
  try {
    await api('DELETE', '/v1/session');
  } finally {
    sessionStorage.removeItem(CSRF_KEY);
  }
}

/** Live updates: one EventSource, shared by the pages. */
const listeners = new Set();
let source = null;

export function connectEvents(onState) {
  if (source) return;
  source = new EventSource('/v1/events');
  source.addEventListener('open', () => onState('connected'));
  source.addEventListener('error', () => onState(source && source.readyState === EventSource.CLOSED ? 'closed' : 'reconnecting'));
  for (const kind of ['migration', 'progress']) {
    source.addEventListener(kind, (e) => {
      let data;
      try {
        data = JSON.parse(e.data);
      } catch {
        return;
      }
      for (const fn of listeners) fn(kind, data);
    });
  }
}

export function disconnectEvents() {
  source?.close();
  source = null;
}

/** Call `fn(kind, data)` on every event until the returned function is called. */
export function onEvent(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/**
 * Calls `load` again shortly after each migration event that `wanted` accepts, coalescing bursts
 * (a transition often comes with its neighbours). Returns the function that stops it.
 */
export function reloadOnMigrationEvents(wanted, load) {
  let timer = null;
  const stop = onEvent((kind, data) => {
    if (kind !== 'migration' || !wanted(data)) return;
    clearTimeout(timer);
    timer = setTimeout(() => void load().catch(() => {}), 300);
  });
  return () => {
    stop();
    clearTimeout(timer);
  };
}
