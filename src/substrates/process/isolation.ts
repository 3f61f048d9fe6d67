/**
 * Whether this host can confine process jobs, and the sentences that say what a job sees either
 * way: said at start and recorded on each migration (docs/decisions.md, "Trust: confining jobs").
 * Confinement itself is done by the supervisor (native/ferry-supervise.c), not here.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { IsolationSupport } from '../substrate.ts';

const execFileAsync = promisify(execFile);

/** What a job sees when it is confined. */
const CONFINED_DETAIL =
  "jobs run as their tenant's runAs uid and gid without privileges (no supplementary groups, no new privileges), in their own " +
  "mount, PID, IPC and UTS namespaces: they see the system's folders (/usr, /etc, /opt, /bin, /lib...) read-only, their tenant's " +
  'data folder and their scratch read-write, a private /tmp and /dev/shm, and no /sys, no Ferry data folder, no other tenant, ' +
  'no /root, /home, /run or /var, and no process outside their step';
const UNCONFINED_SEES =
  "a job runs as Ferry's own user and sees everything that user can: Ferry's data folder (its token and its store), every " +
  "tenant's data, the server's processes (and their environment, when that user is root) and the cgroup tree";

/**
 * Whether jobs can be confined here: asked of the supervisor itself, which builds a whole view and
 * runs nothing (`-P`, as uid 65534), so a host that cannot confine is known at start, not at the first job.
 */
export async function detectIsolation(mode: 'auto' | 'required' | 'off', supervisorPath: string, privileged: boolean): Promise<IsolationSupport> {
  if (mode === 'off') {
    return { isolated: false, detail: `isolation turned off by configuration: ${UNCONFINED_SEES}` };
  }
  if (!privileged) {
    return {
      isolated: false,
      detail:
        `Ferry does not run as root (uid ${process.geteuid?.() ?? 'unknown'}), so it cannot run a job as its tenant's identity or give it ` +
        `a view of its own: ${UNCONFINED_SEES}. Run Ferry as root to confine jobs (confinement through user namespaces, ` +
        'without root, is not implemented)',
    };
  }
  const dir = await mkdtemp(join(tmpdir(), 'ferry-isolation-probe-'));
  try {
    await execFileAsync(supervisorPath, ['-P', dir], { env: {}, timeout: 10_000 });
    return { isolated: true, detail: CONFINED_DETAIL };
  } catch (err) {
    const said = String((err as { stdout?: unknown }).stdout ?? '').trim() || (err as Error).message;
    return { isolated: false, detail: `this host refused to confine a job (${said}): ${UNCONFINED_SEES}` };
  } finally {
    await rmdir(dir).catch(() => undefined);
  }
}
