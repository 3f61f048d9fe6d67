// Migrations: held ones first (all of them, marked), then the others newest first, a page at a
// time from the server. Filters live in the URL (#/?state=&tenant=&issue=); updates arrive as
// server-sent events and re-read the page shown (at most every half second).
import { call, listAll, onEvent } from './api.js';
import { age, fill, h, issueLink, migrationLink, progressBar, stateBadge, table } from './dom.js';

export const STATES = ['filed', 'approved', 'queued', 'running', 'held', 'succeeded', 'accepted-partial', 'abandoned', 'rejected', 'cancelled'];
const PAGE = 100;

const tagged = (el) => {
  el.classList.add('list');
  return el;
};

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, v);
  return q.toString();
}

export async function renderList(main, { params }) {
  const filter = { state: params.get('state') ?? '', tenant: params.get('tenant') ?? '', issue: params.get('issue') ?? '' };
  const cursors = [null];
  let cursor = params.get('cursor');

  const stateSelect = h(
    'select',
    { id: 'f-state', name: 'state' },
    h('option', { value: '' }, 'any state'),
    STATES.map((s) => h('option', { value: s, selected: s === filter.state }, s)),
  );
  const tenantInput = h('input', { id: 'f-tenant', name: 'tenant', value: filter.tenant, size: 14 });
  const issueInput = h('input', { id: 'f-issue', name: 'issue', value: filter.issue, size: 28, placeholder: 'github:acme/platform#742' });
  const form = h(
    'form',
    { class: 'filters', role: 'search', 'aria-label': 'Filter migrations' },
    h('div', {}, h('label', { for: 'f-state' }, 'State'), stateSelect),
    h('div', {}, h('label', { for: 'f-tenant' }, 'Tenant'), tenantInput),
    h('div', {}, h('label', { for: 'f-issue' }, 'Issue'), issueInput),
    h('div', {}, h('button', { type: 'submit' }, 'Apply filters')),
  );
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    location.hash = `#/?${query({ state: stateSelect.value, tenant: tenantInput.value.trim(), issue: issueInput.value.trim() })}`;
  });

  const body = h('div', { id: 'list-body' });
  const pager = h('div', { class: 'pager' });
  const summary = h('p', { class: 'muted', id: 'list-summary' });
  fill(main, h('h1', {}, 'Migrations'), form, summary, body, pager);

  let rows = new Map();
  let stale = false;
  let loading = null;

  async function load() {
    const base = { tenant: filter.tenant, issue: filter.issue };
    const calls = [];
    // Held first, whole: they are the ones someone must decide.
    const showHeldApart = filter.state === '';
    if (showHeldApart) calls.push(listAll(`/v1/migrations?${query({ ...base, state: 'held', order: 'desc' })}`).then((data) => ({ data })));
    const rest = filter.state === '' ? STATES.filter((s) => s !== 'held').join(',') : filter.state;
    calls.push(call('GET', `/v1/migrations?${query({ ...base, state: rest, limit: PAGE, order: 'desc', cursor })}`));
    const answers = await Promise.all(calls);
    const held = showHeldApart ? answers[0].data : [];
    const page = answers[answers.length - 1];
    const next = page.headers.get('x-ferry-next-cursor');
    render([...held, ...page.data], next, held.length);
  }

  function render(list, next, heldCount) {
    rows = new Map();
    const now = Date.now();
    if (list.length === 0) {
      fill(body, h('p', {}, 'No migrations match.'));
    } else {
      fill(
        body,
        tagged(
          table(
            'Migrations, held first',
            ['Migration', 'State', 'Tenant', 'Issue', 'Attempt', 'Progress', 'Age'],
            list,
            (m) => {
              const progress = h('span', { 'data-progress': m.id }, progressBar(m.progress, `Progress of ${m.id}`));
              rows.set(m.id, { progress });
              return [
                migrationLink(m.id),
                [stateBadge(m.state), m.heldCause ? h('span', { class: 'muted' }, ` (${m.heldCause})`) : null],
                m.tenant,
                issueLink(m.issue),
                String(m.attempts),
                progress,
                h('span', { title: m.createdAt }, age(m.createdAt, now)),
              ];
            },
            (m) => ({ class: m.state === 'held' ? 'held' : null, 'data-id': m.id, 'data-state': m.state }),
          ),
        ),
      );
    }
    fill(summary, heldCount > 0 ? `${heldCount} held, shown first. ` : '', `${list.length - heldCount} other migrations on this page.`);
    fill(
      pager,
      cursors.length > 1 || cursor
        ? h(
            'button',
            {
              type: 'button',
              class: 'secondary',
              onclick: () => {
                cursor = null;
                cursors.length = 1;
                void refresh();
              },
            },
            'First page',
          )
        : null,
      next
        ? h(
            'button',
            {
              type: 'button',
              class: 'secondary',
              onclick: () => {
                cursors.push(cursor);
                cursor = next;
                void refresh();
              },
            },
            'Next page',
          )
        : null,
    );
  }

  async function refresh() {
    if (loading) {
      stale = true;
      return loading;
    }
    loading = load().catch((err) => fill(body, h('p', { class: 'alert', role: 'alert' }, err.message)));
    await loading;
    loading = null;
    if (stale) {
      stale = false;
      await refresh();
    }
  }

  let timer = null;
  const stop = onEvent((kind, data) => {
    if (kind === 'progress') {
      const row = rows.get(data.id);
      if (row) fill(row.progress, progressBar(data.progress, `Progress of ${data.id}`));
      return;
    }
    clearTimeout(timer);
    timer = setTimeout(() => void refresh(), 300);
  });
  await refresh();
  return () => {
    stop();
    clearTimeout(timer);
  };
}
