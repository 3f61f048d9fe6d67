import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useSwarm, watchLines } from './support/swarm-fixture.ts';

const swarm = useSwarm();

void test("a job runs as its tenant's identity, with no capabilities, no new privileges, a pids limit, and sees only its two volumes and its env", async (t) => {
  const env = await swarm.require(t);
  if (!env) return;
  const tenant = await env.tenant();
  const spec = env.spec(tenant, {
    limits: { cpu: 500, memory: 64 * 1024 * 1024, pids: 50 },
    argv: [
      'sh',
      '-c',
      [
        'echo "ids $(id -u):$(id -g)"',
        'grep -E "^(CapEff|CapPrm|NoNewPrivs):" /proc/self/status | tr -s "\\t " " "',
        'echo "pids $(cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max 2>/dev/null || echo unknown)"',
        'if chown 0:0 /ferry/tenant/a.txt 2>/dev/null; then echo chown-ok; else echo chown-refused; fi',
        'if [ -e /var/run/docker.sock ] || [ -e /run/ferry-swarm/docker.sock ]; then echo socket-visible; else echo no-socket; fi',
        'echo "mounts $(grep -c " /ferry/" /proc/mounts)"',
        'env | grep -c "^FERRY_DOCKER\\|^DOCKER_HOST\\|^HOME=/root" || true',
      ].join('; '),
    ],
  });
  await env.prepare(spec);
  const ref = env.substrate.jobRef(spec);
  await env.substrate.start(spec, ref);
  const { result, lines } = await watchLines(env.substrate, ref);
  assert.equal(result.cause, null, `${result.detail}: ${lines.join(' | ')}`);
  assert.deepEqual(lines, [
    `ids ${tenant.runAs.uid}:${tenant.runAs.gid}`,
    'CapPrm: 0000000000000000',
    'CapEff: 0000000000000000',
    'NoNewPrivs: 1',
    'pids 50',
    'chown-refused',
    'no-socket',
    'mounts 2',
    '0',
  ]);
  await env.cleanup(spec, ref);
});
