/**
 * A migration step is a filer's shell command. On the process substrate, run by root, a hostile
 * step tries every escape of issue 8 and fails at each, while its own work in its tenant's data and
 * its scratch succeeds. Every check is asserted twice: on the job's own report (written into its
 * data folder, so it can say "READ" or "WROTE" when an escape works) and on a fact seen from the
 * host (a file that must not exist, a process's uid or cgroup, a signal counter, a process scan).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, linkSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { FerryError } from '../../src/core/errors.ts';
import type { Tenant } from '../../src/core/types.ts';
import { SpawnFailedError, Spawner } from '../../src/substrates/process/spawner.ts';
import { waitFor } from '../support/harness.ts';
import { jobProcess, pidsOf, processesWith, processKit, type Kit } from '../substrates/process/process-kit.ts';

const RUN_AS = { uid: 200123, gid: 200123 };
const secret = (): string => `secret-${randomBytes(12).toString('hex')}`;

function tenantOf(kit: Kit): Tenant {
  return { id: 'shop', steadyState: { cpu: 1000, memory: 256 * 1024 * 1024 }, data: join(kit.dataDir, 'tenants', 'shop'), runAs: RUN_AS, allowRoot: false };
}

function report(file: string): Map<string, string> {
  const lines = readFileSync(file, 'utf8').trim().split('\n');
  return new Map(lines.map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
}

/** A /proc/PID/status field, e.g. `Uid` → "200123\t200123\t200123\t200123". */
function status(pid: number, field: string): string {
  return new RegExp(`^${field}:[ \\t]*(.*)$`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]?.trim() ?? '';
}

function memoryCgroupOf(pid: number): string {
  const line = readFileSync(`/proc/${pid}/cgroup`, 'utf8')
    .split('\n')
    .find((l) => /^\d+:memory:/.test(l));
  return line?.split(':')[2] ?? '';
}

async function confinedKit(t: { skip(why: string): void }): Promise<Kit | null> {
  if (process.geteuid?.() !== 0) {
    t.skip('the hostile-job suite needs root: only root can confine jobs');
    return null;
  }
  const kit = await processKit();
  assert.equal(kit.substrate.isolation().isolated, true, kit.substrate.isolation().detail);
  return kit;
}

// Each line: NAME=ok when the job's own work succeeded, or the escape was refused; anything else says what got out.
const HOSTILE = String.raw`
R="$FERRY_TENANT_DATA/report"; : > "$R"
say() { echo "$1=$2" >> "$R"; }
attempt() { name=$1; shift; if "$@" 2>/dev/null; then say "$name" ESCAPED; else say "$name" ok; fi; }
reads() { test -r "$1" && cat "$1" >> "$FERRY_SCRATCH/stolen" 2>/dev/null; }
writes() { echo hostile > "$1" 2>/dev/null; }
if echo work > "$FERRY_TENANT_DATA/work.txt" && [ "$(cat "$FERRY_TENANT_DATA/work.txt")" = work ]; then say own-data ok; else say own-data FAILED; fi
if echo work > "$FERRY_SCRATCH/work.txt" && echo tmp > "/tmp/$MARKER"; then say own-scratch-and-tmp ok; else say own-scratch-and-tmp FAILED; fi
if [ "$(cat "$FERRY_TENANT_DATA/handed-over.txt")" = before ] && echo after > "$FERRY_TENANT_DATA/handed-over.txt"; then say handed-over ok; else say handed-over FAILED; fi
say uid "$(id -u)"; say gid "$(id -g)"; say groups "$(id -G)"
attempt token reads "$TOKEN_FILE"
attempt guessed-token reads "$(dirname "$(dirname "$FERRY_SCRATCH")")/token"
attempt store reads "$STORE_FILE"
attempt other-tenant-read reads "$OTHER_FILE"
attempt other-tenant-write writes "$(dirname "$OTHER_FILE")/$MARKER"
if env | grep -q "^$SECRET_NAME="; then say server-env ESCAPED; else say server-env ok; fi
attempt server-environ reads "/proc/$SERVER_PID/environ"
attempt signal-server kill -USR2 "$SERVER_PID"
attempt write-etc writes "/etc/$MARKER"
attempt write-data-dir writes "$(dirname "$(dirname "$FERRY_SCRATCH")")/$MARKER"
attempt write-root writes "/$MARKER"
attempt write-usr writes "/usr/$MARKER"
attempt write-root-home writes "/root/$MARKER"
attempt sys-exists test -e /sys
for procs in /sys/fs/cgroup/memory/cgroup.procs /sys/fs/cgroup/pids/cgroup.procs /sys/fs/cgroup/cgroup.procs /sys/fs/cgroup/unified/cgroup.procs; do
  if echo $$ > "$procs" 2>/dev/null; then say leave-cgroup ESCAPED; fi
done
grep -q leave-cgroup "$R" || say leave-cgroup ok
attempt see-processes test -e "/proc/$SERVER_PID"
ln -s /usr/bin/sleep "$FERRY_SCRATCH/$MARKER"
setsid "$FERRY_SCRATCH/$MARKER" 1000 > /dev/null 2>&1 &
say done yes
: > "$FERRY_SCRATCH/ready"
while [ ! -e "$FERRY_SCRATCH/go" ]; do sleep 0.02; done
`;

void test('a hostile step fails at every escape while its own work succeeds', { timeout: 60_000 }, async (t) => {
  const secretName = `FERRY_HOSTILE_SECRET_${randomBytes(4).toString('hex')}`;
  const secretValue = secret();
  // In the server's environment before the substrate starts: nothing of it may reach a job.
  process.env[secretName] = secretValue;
  let usr2 = 0;
  const onUsr2 = (): void => void usr2++;
  process.on('SIGUSR2', onUsr2);
  const kit = await confinedKit(t);
  if (!kit) return;
  try {
    const tenant = tenantOf(kit);
    const marker = `ferry-hostile-${randomBytes(6).toString('hex')}`;
    const token = { file: join(kit.dataDir, 'token'), value: secret() };
    const store = { file: join(kit.dataDir, 'ferry.db'), value: secret() };
    const other = { file: join(kit.dataDir, 'tenants', 'other', 'secret.txt'), value: secret() };
    writeFileSync(token.file, token.value, { mode: 0o600 });
    writeFileSync(store.file, store.value, { mode: 0o644 });
    mkdirSync(join(kit.dataDir, 'tenants', 'other'), { recursive: true, mode: 0o755 });
    writeFileSync(other.file, other.value, { mode: 0o644 });

    // The tenant's existing data is handed over, never following links out of it.
    mkdirSync(tenant.data, { recursive: true });
    writeFileSync(join(tenant.data, 'handed-over.txt'), 'before');
    const outsideByLink = join(kit.dataDir, 'outside-symlinked.txt');
    const outsideByHardLink = join(kit.dataDir, 'outside-hardlinked.txt');
    writeFileSync(outsideByLink, 'outside');
    writeFileSync(outsideByHardLink, 'outside');
    symlinkSync(outsideByLink, join(tenant.data, 'link'));
    linkSync(outsideByHardLink, join(tenant.data, 'hard'));
    const said = await kit.substrate.adoptTenantData(tenant);
    assert.match(said ?? '', new RegExp(`^handed ${tenant.data} over to uid 200123 gid 200123; left 1 hard-linked file`));
    assert.equal(statSync(join(tenant.data, 'handed-over.txt')).uid, RUN_AS.uid);
    assert.equal(statSync(outsideByLink).uid, 0, 'adoption followed a symbolic link out of the data folder');
    assert.equal(statSync(outsideByHardLink).uid, 0, 'adoption took over a hard-linked file');

    const { spec, ref } = kit.step(['sh', '-c', HOSTILE], {
      tenant,
      env: {
        MARKER: marker,
        TOKEN_FILE: token.file,
        STORE_FILE: store.file,
        OTHER_FILE: other.file,
        SERVER_PID: String(process.pid),
        SECRET_NAME: secretName,
      },
      limits: { cpu: 1000, memory: 256 * 1024 * 1024, pids: 64 },
    });
    await kit.substrate.createScratch(spec.scratchRef, spec);
    const scratch = statSync(spec.scratchRef);
    assert.deepEqual([scratch.uid, scratch.gid, scratch.mode & 0o777], [RUN_AS.uid, RUN_AS.gid, 0o700]);
    await kit.substrate.start(spec, ref);
    const watched = kit.substrate.watch(ref, () => undefined);
    watched.catch(() => undefined); // awaited below
    await waitFor('the hostile step to try everything', () => existsSync(join(spec.scratchRef, 'ready')));

    // Host-side facts while it still runs.
    const job = jobProcess(ref);
    assert.equal(status(job, 'Uid'), '200123\t200123\t200123\t200123');
    assert.equal(status(job, 'Gid'), '200123\t200123\t200123\t200123');
    assert.equal(status(job, 'Groups'), '');
    assert.equal(status(job, 'NoNewPrivs'), '1');
    const left = processesWith(marker);
    assert.equal(left.length, 1, `the setsid child should run until its step ends: ${left.join(', ')}`);
    const jobCgroups = (JSON.parse(readFileSync(join(ref, 'spec.json'), 'utf8')) as { cgroupDirs: string[] }).cgroupDirs;
    const memoryDir = jobCgroups.find((d) => d.includes('/memory/'));
    assert.ok(memoryDir, `the job has a memory cgroup: ${jobCgroups.join(', ')}`);
    for (const pid of [job, ...left]) assert.equal(`/sys/fs/cgroup/memory${memoryCgroupOf(pid)}`, memoryDir, `process ${pid} left its memory cgroup`);

    writeFileSync(join(spec.scratchRef, 'go'), '');
    const result = await watched;
    assert.equal(result.cause, null, result.detail);
    // The step is over: nothing it started runs on.
    assert.deepEqual(processesWith(marker), [], 'a setsid child outlived its step');

    const said_ = report(join(tenant.data, 'report'));
    const log = readFileSync(spec.logPath, 'utf8');
    assert.equal(said_.get('done'), 'yes', `the step did not get through its checks:\n${log}`);
    assert.equal(said_.get('uid'), '200123');
    assert.equal(said_.get('gid'), '200123');
    assert.equal(said_.get('groups'), '200123');
    for (const check of [
      'own-data',
      'own-scratch-and-tmp',
      'handed-over',
      'token',
      'guessed-token',
      'store',
      'other-tenant-read',
      'other-tenant-write',
      'server-env',
      'server-environ',
      'signal-server',
      'write-etc',
      'write-data-dir',
      'write-root',
      'write-usr',
      'write-root-home',
      'sys-exists',
      'leave-cgroup',
      'see-processes',
    ]) {
      assert.equal(said_.get(check), 'ok', `${check}: ${said_.get(check) ?? 'not reported'}\n${log}`);
    }

    // Nothing secret got out, into its folders or its log.
    const stolen = existsSync(join(spec.scratchRef, 'stolen')) ? readFileSync(join(spec.scratchRef, 'stolen'), 'utf8') : '';
    for (const value of [token.value, store.value, other.value, secretValue]) {
      assert.equal(stolen.includes(value), false, 'a secret was copied into scratch');
      assert.equal(log.includes(value), false, 'a secret reached the log');
    }
    assert.equal(usr2, 0, 'the job signalled the server');
    for (const path of [
      `/etc/${marker}`,
      join(kit.dataDir, marker),
      `/${marker}`,
      `/usr/${marker}`,
      `/root/${marker}`,
      `/tmp/${marker}`,
      join(kit.dataDir, 'tenants', 'other', marker),
    ]) {
      assert.equal(existsSync(path), false, `the job wrote ${path} on the host`);
    }
    assert.equal(readFileSync(other.file, 'utf8'), other.value);
    // Its own work is there, and its own.
    assert.equal(readFileSync(join(tenant.data, 'work.txt'), 'utf8'), 'work\n');
    assert.equal(statSync(join(tenant.data, 'work.txt')).uid, RUN_AS.uid);
    assert.equal(readFileSync(join(tenant.data, 'handed-over.txt'), 'utf8'), 'after\n');
    assert.equal(readFileSync(join(spec.scratchRef, 'work.txt'), 'utf8'), 'work\n');
  } finally {
    process.off('SIGUSR2', onUsr2);
    delete process.env[secretName];
    await kit.cleanup();
  }
});

void test('remove(job) at closure ends everything the step started, setsid children included', { timeout: 30_000 }, async (t) => {
  const kit = await confinedKit(t);
  if (!kit) return;
  try {
    const marker = `ferry-hostile-${randomBytes(6).toString('hex')}`;
    const { spec, ref } = kit.step(
      [
        'sh',
        '-c',
        'ln -s /usr/bin/sleep "$FERRY_SCRATCH/$MARKER"; setsid "$FERRY_SCRATCH/$MARKER" 1000 >/dev/null 2>&1 & : > "$FERRY_SCRATCH/ready"; sleep 1000',
      ],
      { tenant: tenantOf(kit), env: { MARKER: marker } },
    );
    await kit.substrate.createScratch(spec.scratchRef, spec);
    await kit.substrate.start(spec, ref);
    await waitFor('the step to start its setsid child', () => existsSync(join(spec.scratchRef, 'ready')) && processesWith(marker).length === 1);
    const { supervisor } = pidsOf(ref);
    await kit.substrate.remove('job', ref);
    assert.deepEqual(processesWith(marker), [], 'a setsid child outlived remove(job)');
    assert.deepEqual(processesWith(`-d ${ref}`), [], `the supervisor ${supervisor} outlived remove(job)`);
  } finally {
    await kit.cleanup();
  }
});

void test('a step cannot fork past its pids limit', { timeout: 30_000 }, async (t) => {
  const kit = await confinedKit(t);
  if (!kit) return;
  try {
    if (!kit.substrate.enforcedDimensions().includes('pids')) return t.skip(`no pids controller here: ${kit.substrate.limits().detail}`);
    // Builtins only once the forks start failing: dash gives up on a failed fork.
    const script = String.raw`
      ( i=0; while [ $i -lt 64 ]; do sleep 1000 & echo $! >> "$FERRY_SCRATCH/forks"; i=$((i+1)); done ) 2>/dev/null
      n=0; while read pid; do n=$((n+1)); kill $pid; done < "$FERRY_SCRATCH/forks"
      echo "forks=$n" > "$FERRY_TENANT_DATA/pids-report"
      : > "$FERRY_SCRATCH/ready"
      while [ ! -e "$FERRY_SCRATCH/go" ]; do :; done`;
    const tenant = tenantOf(kit);
    const { spec, ref } = kit.step(['sh', '-c', script], { tenant, limits: { cpu: 1000, memory: 256 * 1024 * 1024, pids: 16 } });
    await kit.substrate.createScratch(spec.scratchRef, spec);
    await kit.substrate.start(spec, ref);
    const watched = kit.substrate.watch(ref, () => undefined);
    watched.catch(() => undefined); // awaited below
    await waitFor('the step to hit its pids limit', () => existsSync(join(spec.scratchRef, 'ready')));
    const pidsDir = (JSON.parse(readFileSync(join(ref, 'spec.json'), 'utf8')) as { cgroupDirs: string[] }).cgroupDirs.find((d) => d.includes('/pids/'));
    assert.ok(pidsDir, 'the job has a pids cgroup');
    assert.equal(readFileSync(join(pidsDir, 'pids.max'), 'utf8').trim(), '16');
    assert.match(readFileSync(join(pidsDir, 'pids.events'), 'utf8'), /^max [1-9]\d*$/m, 'no fork was refused');
    writeFileSync(join(spec.scratchRef, 'go'), '');
    assert.equal((await watched).cause, null);
    const forks = Number(/^forks=(\d+)$/m.exec(readFileSync(join(tenant.data, 'pids-report'), 'utf8'))?.[1]);
    assert.ok(forks >= 1 && forks < 16, `the step started ${forks} processes under a limit of 16`);
  } finally {
    await kit.cleanup();
  }
});

void test('a NUL byte in a step argument or env value is refused before anything runs', { timeout: 30_000 }, async (t) => {
  const kit = await confinedKit(t);
  if (!kit) return;
  try {
    const marker = join(kit.dataDir, `nul-${randomBytes(4).toString('hex')}`);
    // Cut at the NUL, this would be `touch <marker>`: another command than the one approved.
    for (const extra of [{ argv: ['sh', '-c', `touch ${marker}\0; echo approved`] }, { env: { SAFE: `x\0LD_PRELOAD=/tmp/evil.so` } }]) {
      const { spec, ref } = kit.step(['sh', '-c', `touch ${marker}`], { tenant: tenantOf(kit), ...extra });
      await kit.substrate.createScratch(spec.scratchRef, spec);
      await assert.rejects(
        kit.substrate.start(spec, ref),
        (err: unknown) => err instanceof FerryError && err.code === 'FERRY_INVALID_REQUEST' && /NUL byte/.test(err.message),
      );
      assert.equal(existsSync(ref), false, 'a refused step left a step folder');
    }
    // The spawner's client refuses too, whoever calls it.
    const spawner = await Spawner.start(join(import.meta.dirname, '../../build/ferry-spawner'));
    try {
      await assert.rejects(
        spawner.spawn({ program: '/bin/sh', args: ['-c', `touch ${marker}\0`], env: {}, cwd: '/' }),
        (err: unknown) => err instanceof SpawnFailedError && err.errno === 22,
      );
    } finally {
      await spawner.close();
    }
    assert.equal(existsSync(marker), false, 'a command cut at its NUL byte ran');
  } finally {
    await kit.cleanup();
  }
});
