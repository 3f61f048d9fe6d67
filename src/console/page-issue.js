// One issue: its migrations together, and (operators) `Close issue`, which cancels what is not
// final and removes every artifact of its migrations; the answer lists what was removed.
import { ApiError, api, listAll, reloadOnMigrationEvents } from './api.js';
import { age, announce, fill, h, migrationLink, progressBar, stateBadge, table } from './dom.js';

export async function renderIssue(main, { me, arg: ref }) {
  const mayClose = me.role === 'operator' || me.role === 'admin';
  const body = h('div', {});
  const result = h('div', { id: 'close-result' });
  const dialog = h('dialog', { id: 'close-dialog', 'aria-labelledby': 'close-title' });
  const closeButton = mayClose ? h('button', { type: 'button', class: 'danger', onclick: () => confirmClose() }, 'Close issue') : null;
  fill(
    main,
    h('h1', {}, 'Issue ', h('code', {}, ref)),
    closeButton
      ? h('p', {}, closeButton, ' cancels what is not final and removes every artifact (jobs, snapshots, scratch, logs) of its migrations. Tenant data stays.')
      : null,
    result,
    body,
    dialog,
  );

  async function load() {
    const list = await listAll(`/v1/migrations?issue=${encodeURIComponent(ref)}`);
    const now = Date.now();
    fill(
      body,
      list.length === 0
        ? h('p', {}, 'No migrations of this issue that you may see.')
        : table(
            'Migrations of this issue',
            ['Migration', 'State', 'Tenant', 'Attempt', 'Progress', 'Age'],
            list,
            (m) => [
              migrationLink(m.id),
              stateBadge(m.state),
              m.tenant,
              String(m.attempts),
              progressBar(m.progress, `Progress of ${m.id}`),
              age(m.createdAt, now),
            ],
            (m) => ({ class: m.state === 'held' ? 'held' : null }),
          ),
    );
  }

  function confirmClose() {
    const confirm = h('button', { type: 'submit', class: 'danger' }, 'Confirm: Close issue');
    const form = h(
      'form',
      {},
      h('h2', { id: 'close-title' }, `Close issue ${ref}?`),
      h(
        'p',
        {},
        'This cancels every migration of the issue that is not final (stopping a running attempt first), removes all their artifacts, and refuses new filings on it.',
      ),
      h('div', { class: 'buttons' }, confirm, h('button', { type: 'button', class: 'secondary', onclick: () => dialog.close() }, 'Back')),
    );
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      confirm.disabled = true;
      try {
        const r = await api('POST', `/v1/issues/${encodeURIComponent(ref)}/close`, {});
        dialog.close();
        fill(
          result,
          h(
            'div',
            { class: 'result', role: 'status' },
            h(
              'p',
              {},
              `Issue closed. Cancelled: ${r.cancelled.length ? r.cancelled.join(', ') : 'none'}. Removed ${r.removed.length} artifact(s)${r.pending.length ? `; ${r.pending.length} still to remove (retried)` : ''}.`,
            ),
            r.removed.length
              ? h(
                  'ul',
                  { id: 'removed' },
                  r.removed.map((a) => h('li', {}, `${a.kind ?? 'artifact'} ${a.ref ?? ''}${a.migrationId ? ` of ${a.migrationId}` : ''}`)),
                )
              : null,
            r.pending.length
              ? h(
                  'ul',
                  {},
                  r.pending.map((a) => h('li', {}, `still to remove: ${a.kind ?? ''} ${a.ref ?? ''} ${a.error ?? ''}`)),
                )
              : null,
          ),
        );
        announce('Issue closed');
        await load();
      } catch (err) {
        dialog.close();
        fill(
          result,
          h('div', { class: 'alert', role: 'alert' }, h('strong', {}, 'Close issue refused: '), err instanceof ApiError ? err.message : err.message),
        );
      }
    });
    fill(dialog, form);
    dialog.showModal();
    confirm.focus();
  }

  const stop = reloadOnMigrationEvents((data) => data.issue === ref, load);
  await load();
  return () => {
    stop();
    if (dialog.open) dialog.close();
  };
}
