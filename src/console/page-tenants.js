// Tenants and capacity: each tenant's node, steady-state, data, identity, the migration holding it
// (linked) and those queued behind; what the running migrations' peaks use of this node; and every
// node of the cluster with its state, capacity and what runs on it.
import { api, listAll, reloadOnMigrationEvents } from './api.js';
import { age, fill, h, migrationLink, quantity, resources, stateBadge, table, time } from './dom.js';

export async function renderTenants(main) {
  const body = h('div', {});
  fill(main, h('h1', {}, 'Tenants and capacity'), body);

  async function load() {
    const [tenants, capacity, active, cluster] = await Promise.all([
      listAll('/v1/tenants'),
      api('GET', '/v1/capacity'),
      listAll('/v1/migrations?state=running,held,queued,approved&order=desc'),
      api('GET', '/v1/nodes').catch(() => null),
    ]);
    const byTenant = new Map();
    for (const m of active) {
      const t = byTenant.get(m.tenant) ?? { holder: null, queued: [] };
      // A tenant's holder is its running or held migration, or one queued again after a decision.
      if (m.state === 'running' || m.state === 'held' || (m.state === 'queued' && m.attempts > 0)) t.holder = m;
      else t.queued.push(m);
      byTenant.set(m.tenant, t);
    }
    const dims = [...new Set([...Object.keys(capacity.capacity), ...Object.keys(capacity.used)])];
    fill(
      body,
      h('h2', {}, capacity.node ? `Capacity of node ${capacity.node} (this one)` : 'Node capacity'),
      h(
        'p',
        { class: 'muted' },
        `${capacity.running.length} running migration(s)${capacity.scoped ? ' of your tenants' : ''}; their declared peaks are what the scheduler counts.`,
      ),
      table('Node capacity and use', ['Dimension', 'Capacity', 'Used by running peaks', 'Share'], dims, (d) => {
        const cap = capacity.capacity[d];
        const used = capacity.used[d] ?? 0;
        const share = cap ? Math.round((100 * used) / cap) : null;
        return [
          d,
          quantity(d, cap),
          quantity(d, used),
          share === null ? '—' : [h('progress', { max: 100, value: Math.min(share, 100), 'aria-label': `${d} in use` }), ` ${share}%`],
        ];
      }),
      cluster ? nodesSection(cluster) : null,
      h('h2', {}, 'Tenants'),
      tenants.length === 0
        ? h('p', {}, 'No tenants registered.')
        : table('Tenants', ['Tenant', 'Node', 'Steady-state', 'Data', 'Runs as', 'Held by', 'Queued'], tenants, (t) => {
            const mine = byTenant.get(t.id) ?? { holder: null, queued: [] };
            return [
              h('a', { href: `#/?tenant=${encodeURIComponent(t.id)}` }, t.id),
              t.node ?? '—',
              resources(t.steadyState),
              h('code', {}, t.data),
              t.runAs ? `${t.runAs.uid}:${t.runAs.gid}` : '—',
              mine.holder ? [migrationLink(mine.holder.id), ' ', stateBadge(mine.holder.state)] : 'free',
              mine.queued.length ? mine.queued.map((m, i) => [i ? ', ' : '', migrationLink(m.id), ` (${m.state})`]) : 'none',
            ];
          }),
    );
  }
  const stop = reloadOnMigrationEvents(() => true, load);
  await load();
  return stop;
}

// Every node of the cluster: its state, when it was last seen, its capacity and what runs on it.
function nodesSection(cluster) {
  const now = Date.now();
  return [
    h('h2', {}, 'Nodes'),
    h(
      'p',
      { class: 'muted' },
      `${cluster.nodes.length} node(s). A tenant's migrations run on its node, within that node's capacity${cluster.scoped ? '; running: your tenants only' : ''}.`,
    ),
    table('Nodes', ['Node', 'State', 'Last seen', 'Substrate', 'Capacity', 'Running', 'Address'], cluster.nodes, (n) => [
      n.self ? [n.name, ' (this one)'] : n.name,
      h('span', { class: `badge node-${n.state}` }, n.state === 'lost' && n.lostAt ? ['lost since ', time(n.lostAt)] : n.state),
      h('span', { title: n.lastSeenAt }, `${age(n.lastSeenAt, now)} ago`),
      n.substrate,
      resources(n.capacity),
      n.running.migrations.length ? [n.running.migrations.map((id, i) => [i ? ', ' : '', migrationLink(id)]), ' — ', resources(n.running.peaks)] : 'nothing',
      n.url && !n.self ? h('a', { href: `${n.url}/` }, n.url) : (n.url ?? '—'),
    ]),
  ];
}
