// One migration: what it is, where it is, why it was admitted, what happened, its log (followed
// live), and the decisions an operator may take on it. Re-read on every event about it; a re-read
// waits while a decision dialog is open, so that a reason being typed is never thrown away.
import { ApiError, api, onEvent } from './api.js';
import { announce, fill, h, issueLink, progressBar, quantity, resources, stateBadge, table, time } from './dom.js';

const FINAL = new Set(['succeeded', 'accepted-partial', 'abandoned', 'rejected', 'cancelled']);
const ACTION_NAMES = { resume: 'Resume', 'wipe-and-retry': 'Wipe and retry', 'accept-partial': 'Accept partial', abandon: 'Abandon' };
const ACTION_ORDER = ['resume', 'wipe-and-retry', 'accept-partial', 'abandon'];
const TAIL_BYTES = 256 * 1024;
const MAX_LOG_CHARS = 1024 * 1024;

export async function renderMigration(main, { me, arg: id }) {
  const mayDecide = me.role === 'operator' || me.role === 'admin';
  const result = h('div', { id: 'decision-result' });
  const detail = h('div', { id: 'detail' });
  const logSection = h('section', { 'aria-labelledby': 'log-title' });
  const dialog = h('dialog', { id: 'decision-dialog', 'aria-labelledby': 'dialog-title' });
  fill(main, h('h1', {}, 'Migration ', h('code', {}, id)), result, detail, logSection, dialog);

  let m = null;
  let nodes = null; // GET /v1/nodes by name, or null when it could not be read
  let pending = false;
  let log = null; // { attempt, abort }

  async function load() {
    const [migration, cluster] = await Promise.all([api('GET', `/v1/migrations/${encodeURIComponent(id)}`), api('GET', '/v1/nodes').catch(() => null)]);
    m = migration;
    nodes = cluster ? new Map(cluster.nodes.map((n) => [n.name, n])) : null;
    render();
    const latest = m.attempts[m.attempts.length - 1];
    // Follow the newest attempt unless the reader chose an older one.
    if (latest && (!log || (log.auto && log.attempt !== latest.number))) showLog(latest.number, true);
  }

  // A re-render (every progress event of a running migration) must not take the keyboard focus away.
  function render() {
    const active = document.activeElement;
    const focused = active && detail.contains(active) ? { tag: active.tagName, text: active.textContent } : null;
    draw();
    if (focused) [...detail.querySelectorAll(focused.tag)].find((el) => el.textContent === focused.text)?.focus();
  }

  function draw() {
    const current = m.attempts[m.attempts.length - 1] ?? null;
    const currentStep = m.state === 'running' && current ? current.step : null;
    fill(
      detail,
      h(
        'dl',
        { class: 'facts' },
        h('dt', {}, 'State'),
        h('dd', { id: 'state' }, stateBadge(m.state)),
        h('dt', {}, 'Tenant'),
        h('dd', {}, h('a', { href: '#/tenants' }, m.tenant)),
        h('dt', {}, 'Node'),
        h('dd', { id: 'node' }, nodeFact(m.node)),
        h('dt', {}, 'Issue'),
        h('dd', {}, issueLink(m.issue)),
        h('dt', {}, 'Attempts'),
        h('dd', {}, String(m.attempts.length)),
        h('dt', {}, 'Filed by'),
        h('dd', {}, m.filedBy),
        h('dt', {}, 'Filed'),
        h('dd', {}, time(m.createdAt)),
        h('dt', {}, 'Limits enforced'),
        h('dd', {}, m.limitsEnforced === null ? '—' : m.limitsEnforced ? 'yes' : 'NO'),
        h('dt', {}, 'Confined'),
        h('dd', {}, m.isolated === null ? '—' : m.isolated ? 'yes' : 'NO'),
        h('dt', {}, 'Checkpoint'),
        h('dd', { id: 'checkpoint' }, m.checkpoint ? `step ${m.checkpoint.step + 1}: ${m.checkpoint.text}` : 'none'),
        h('dt', {}, 'Snapshot'),
        h('dd', {}, m.snapshot ? [m.snapshot.ref, ' at ', time(m.snapshot.at)] : 'none'),
      ),
      m.state === 'held'
        ? h(
            'div',
            { class: 'panel held', id: 'held' },
            h('p', {}, h('strong', {}, 'Held: '), `step ${(m.failedStep ?? 0) + 1} failed (${m.heldCause ?? 'unknown cause'}). `, m.heldDetail ?? ''),
            h('p', {}, 'Nothing more runs for this tenant until someone decides.'),
          )
        : null,
      decisions(),
      h('h2', {}, 'Steps'),
      h(
        'ol',
        { class: 'steps', id: 'steps' },
        m.request.steps.map((s, i) =>
          h(
            'li',
            { 'aria-current': i === currentStep ? 'step' : null },
            h('code', {}, s.name),
            i === currentStep ? [' — running now ', progressBar(m.progress, `Progress of step ${s.name}`)] : null,
            m.state === 'held' && i === m.failedStep ? ' — failed' : null,
            h('div', { class: 'muted' }, h('code', {}, s.run.join(' '))),
          ),
        ),
      ),
      h('h2', {}, 'Attempts'),
      m.attempts.length === 0
        ? h('p', {}, 'No attempt yet.')
        : table('Attempts', ['Attempt', 'From step', 'Step', 'Exit code', 'Cause', 'Detail', 'Started', 'Ended', 'Node', 'Log'], m.attempts, (a) => [
            String(a.number),
            String(a.fromStep + 1),
            a.step === null ? '—' : String(a.step + 1),
            a.exitCode === null ? (a.signal ?? '—') : String(a.exitCode),
            a.cause ?? (a.endedAt ? 'ok' : '—'),
            a.detail ?? '',
            time(a.startedAt),
            a.endedAt ? time(a.endedAt) : 'running',
            a.node ?? '—',
            h('button', { type: 'button', class: 'secondary', onclick: () => showLog(a.number, false) }, `Show log of attempt ${a.number}`),
          ]),
      h('h2', {}, 'Admission verdict'),
      h(
        'p',
        { class: 'muted' },
        `${m.verdict.ok ? 'Admitted' : 'Refused'} at `,
        time(m.verdict.at),
        ` against steady-state ${resources(m.verdict.steadyState)}.`,
      ),
      table(
        'Admission verdict per dimension',
        ['Dimension', 'Peak', 'Steady-state', 'Cap (2 × steady-state)', 'Node capacity', 'Verdict'],
        m.verdict.dimensions,
        (d) => [
          d.dimension,
          quantity(d.dimension, d.peak),
          quantity(d.dimension, d.steadyState),
          quantity(d.dimension, d.cap),
          quantity(d.dimension, d.capacity),
          d.ok ? 'ok' : 'over',
        ],
      ),
      m.verdict.reasons.length
        ? h(
            'ul',
            {},
            m.verdict.reasons.map((r) => h('li', {}, r.message)),
          )
        : null,
      h('h2', {}, 'Events'),
      table('Events', ['When', 'Actor', 'Event', 'Move', 'Reason'], m.events, (e) => [
        time(e.at),
        e.actor,
        e.kind,
        e.from ? `${e.from} → ${e.to}` : `→ ${e.to}`,
        e.reason ?? '',
      ]),
      h('h2', {}, 'Artifacts'),
      m.artifacts.length === 0
        ? h('p', {}, 'None recorded.')
        : table('Artifacts', ['Kind', 'Reference', 'State', 'Removed'], m.artifacts, (a) => [
            a.kind,
            h('code', {}, a.ref),
            a.state,
            a.removedAt ? ['yes, ', time(a.removedAt)] : 'no',
          ]),
    );
  }

  // The tenant's node: where its attempts run and its logs are. Another node's state is said when
  // it is not up, and its own console is linked (a console session is known to one node only).
  function nodeFact(name) {
    if (!name) return '—';
    const n = nodes?.get(name);
    if (!n) return name;
    return [
      name,
      n.state === 'up'
        ? null
        : [
            ' ',
            h('span', { class: `badge node-${n.state}` }, n.state === 'lost' ? `lost since ${new Date(n.lostAt ?? n.lastSeenAt).toLocaleString()}` : n.state),
          ],
      !n.self && n.url ? [' — ', h('a', { href: `${n.url}/#/m/${encodeURIComponent(id)}` }, `open this migration on ${name}'s console`)] : null,
    ];
  }

  function decisions() {
    if (!mayDecide) return null;
    const items = [];
    if (m.state === 'held' && m.actions) {
      for (const action of ACTION_ORDER)
        items.push({
          name: ACTION_NAMES[action],
          what: m.actions[action],
          reason: 'required',
          send: (reason) => api('POST', `/v1/migrations/${encodeURIComponent(id)}/actions`, { action, reason }),
        });
    }
    if (m.state === 'filed')
      items.push({
        name: 'Approve',
        what: 'runs the admission gate again and, if it admits, queues the migration to run',
        reason: null,
        send: () => api('POST', `/v1/migrations/${encodeURIComponent(id)}/approve`, {}),
      });
    if (!FINAL.has(m.state)) {
      items.push({
        name: 'Cancel',
        what: m.state === 'running' ? 'stops the running attempt, then ends the migration as cancelled' : 'ends the migration as cancelled',
        reason: 'optional',
        send: (reason) => api('POST', `/v1/migrations/${encodeURIComponent(id)}/cancel`, reason ? { reason } : {}),
      });
    }
    if (items.length === 0) return null;
    return h(
      'section',
      { class: 'panel', 'aria-labelledby': 'decisions-title' },
      h('h2', { id: 'decisions-title' }, 'Decisions'),
      h(
        'div',
        { class: 'actions' },
        items.map((it) => [
          h('button', { type: 'button', class: it.name === 'Abandon' || it.name === 'Cancel' ? 'danger' : null, onclick: () => confirmDecision(it) }, it.name),
          h('p', {}, it.what),
        ]),
      ),
    );
  }

  function confirmDecision(it) {
    const reason = it.reason
      ? h('textarea', { id: 'reason', name: 'reason', required: it.reason === 'required', maxlength: 4000, 'aria-describedby': 'dialog-what' })
      : null;
    const confirm = h('button', { type: 'submit', class: it.name === 'Abandon' || it.name === 'Cancel' ? 'danger' : null }, `Confirm: ${it.name}`);
    const problem = h('div', {});
    // novalidate: the page says what is missing in words (role=alert), not with the browser's bubble.
    const form = h(
      'form',
      { novalidate: true },
      h('h2', { id: 'dialog-title' }, `${it.name} migration ${id}?`),
      h('p', { id: 'dialog-what' }, `This ${it.what}.`),
      reason ? [h('label', { for: 'reason' }, it.reason === 'required' ? 'Reason' : 'Reason (optional)'), reason] : null,
      problem,
      h('div', { class: 'buttons' }, confirm, h('button', { type: 'button', class: 'secondary', onclick: () => dialog.close() }, 'Back')),
    );
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const text = reason ? reason.value.trim() : '';
      if (it.reason === 'required' && !text) {
        fill(problem, h('p', { class: 'alert', role: 'alert' }, 'Give a reason: it is recorded on the migration and shown in its issue.'));
        reason.focus();
        return;
      }
      confirm.disabled = true;
      try {
        const after = await it.send(text);
        dialog.close();
        fill(result, h('p', { class: 'result', role: 'status' }, `${it.name}: done. The migration is now ${after.state}.`));
        announce(`${it.name} done; the migration is now ${after.state}`);
      } catch (err) {
        dialog.close();
        const sentence = err instanceof ApiError ? err.message : `the request failed: ${err.message}`;
        fill(result, h('div', { class: 'alert', role: 'alert' }, h('strong', {}, `${it.name} refused: `), sentence));
      }
    });
    fill(dialog, form);
    dialog.showModal();
    (reason ?? confirm).focus();
  }

  dialog.addEventListener('close', () => {
    if (pending) {
      pending = false;
      void refresh();
    }
  });

  function showLog(number, auto) {
    log?.abort.abort();
    const attempt = m.attempts.find((a) => a.number === number);
    const following = attempt && !attempt.endedAt;
    const abort = new AbortController();
    log = { attempt: number, abort, auto, following, ended: false };
    const pre = h('pre', { class: 'log', id: 'log', tabindex: 0, role: 'region', 'aria-label': `Log of attempt ${number}` });
    const state = h('p', { class: 'muted', id: 'log-state', 'aria-live': 'polite' }, following ? 'Following live…' : 'Loading…');
    const base = `/v1/migrations/${encodeURIComponent(id)}/logs?attempt=${number}`;
    fill(
      logSection,
      h('h2', { id: 'log-title' }, `Log of attempt ${number}`),
      h('p', {}, h('a', { href: `${base}&download=true`, download: `${id}-attempt-${number}.log` }, `Download the whole log of attempt ${number}`)),
      state,
      pre,
    );
    void (async () => {
      try {
        const res = await fetch(`${base}&tail=${TAIL_BYTES}${following ? '&follow=true' : ''}`, { signal: abort.signal, credentials: 'same-origin' });
        if (!res.ok) {
          const p = await res.json().catch(() => null);
          fill(state, p?.detail ?? `HTTP ${res.status}`);
          return;
        }
        const skipped = Number(res.headers.get('x-ferry-log-skipped') ?? '0');
        if (skipped > 0)
          fill(state, `Showing the end of the log: ${(skipped / 1048576).toFixed(1)} MiB before it are in the download. `, following ? 'Following live…' : '');
        const reader = res.body.getReader();
        const decoder = new TextDecoder();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
          let text = pre.textContent + decoder.decode(value, { stream: true });
          if (text.length > MAX_LOG_CHARS) text = text.slice(text.length - MAX_LOG_CHARS);
          pre.textContent = text;
          if (atBottom) pre.scrollTop = pre.scrollHeight;
        }
        log.ended = true;
        state.textContent = following
          ? 'The attempt has ended; this is its whole log (or its end, above).'
          : skipped > 0
            ? state.textContent
            : 'The whole log.';
      } catch (err) {
        if (err.name !== 'AbortError') fill(state, `The log could not be read: ${err.message}`);
      }
    })();
  }

  let timer = null;
  async function refresh() {
    if (dialog.open) {
      pending = true;
      return;
    }
    try {
      await load();
    } catch (err) {
      fill(result, h('p', { class: 'alert', role: 'alert' }, err.message));
    }
  }
  const stop = onEvent((_kind, data) => {
    if (data.id !== id) return;
    clearTimeout(timer);
    timer = setTimeout(() => void refresh(), 150);
  });
  await load();
  return () => {
    stop();
    clearTimeout(timer);
    log?.abort.abort();
    if (dialog.open) dialog.close();
  };
}
