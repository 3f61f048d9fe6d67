/**
 * A swarm node's volumes, as Ferry reads and removes them. A manager's API reaches only its own
 * engine's volumes, so:
 * - on the manager's own node, through that API;
 * - on any other node, through a **node agent**: a one-shot helper service placed on that node,
 *   running the helper image (`sh` and the `docker` CLI) with the node's own engine socket mounted
 *   (the node's `ferry.engine-socket` label, default /var/run/docker.sock). Its script is Ferry's,
 *   with volume names Ferry checked (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`); nothing of a request reaches it.
 *
 * Removal is the container substrate's rule on every node: only a volume whose `ferry.role` label is
 * the kind asked for, never tenant data; the exited containers still holding it (finished tasks the
 * swarm leaves behind) go first.
 */
import { randomBytes } from 'node:crypto';
import { FerryError } from '../../core/errors.ts';
import { ROLE } from '../container/container-labels.ts';
import type { Labels } from '../container/container-labels.ts';
import { engineMessage, isConflict, isNotFound } from '../container/engine-errors.ts';
import { volumeLabels } from '../container/volumes.ts';
import { HELPER_LABEL, runHelperJob } from './helper-jobs.ts';
import { sleep } from './swarm-engine.ts';
import type { SwarmEngine } from './swarm-engine.ts';
import type { TenantNode } from './placement.ts';

/** How long a volume removal waits for the containers of removed services to go. */
const VOLUME_BUSY_WAIT_MS = 10_000;
const VOLUME_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
/** Where an agent finds its node's engine. */
const AGENT_SOCKET = '/ferry-engine.sock';
/** What every agent script starts with: its client, and the exited helpers older than a minute pruned. */
const AGENT_PRELUDE = `set -e; D="docker -H unix://${AGENT_SOCKET}"; $D container prune -f --filter label=${HELPER_LABEL} --filter until=1m >/dev/null 2>&1 || true; `;

export interface NodeVolumes {
  /** Each volume's labels, or null when it is not on the node (one agent for all of them). */
  labels(names: readonly string[]): Promise<Array<Labels | null>>;
  /** Remove a scratch or snapshot volume (its `ferry.role` must be `kind`); absent is fine. */
  remove(name: string, kind: 'scratch' | 'snapshot'): Promise<void>;
  /** Every volume on the node carrying Ferry's role label. */
  list(): Promise<Array<{ name: string; labels: Labels }>>;
}

export function volumesOn(engine: SwarmEngine, node: TenantNode): NodeVolumes {
  return node.isManager ? managerVolumes(engine) : agentVolumes(engine, node);
}

function checkedName(name: string): string {
  if (!VOLUME_NAME.test(name)) throw new FerryError('FERRY_BAD_REQUEST', `${JSON.stringify(name)} is not a volume name`);
  return name;
}

function managerVolumes(engine: SwarmEngine): NodeVolumes {
  const docker = engine.docker;
  return {
    labels: (names) => Promise.all(names.map((name) => volumeLabels(docker, name))),
    async remove(name, kind) {
      const labels = await volumeLabels(docker, name);
      if (labels === null) return;
      refuseUnlessKind(name, kind, labels[ROLE]);
      const holders = await docker.listContainers({ all: true, filters: { volume: [name], status: ['exited', 'created', 'dead'] } });
      for (const c of holders) {
        try {
          await docker.getContainer(c.Id).remove({ force: true });
        } catch (err) {
          if (!isNotFound(err) && !isConflict(err)) throw err;
        }
      }
      const until = Date.now() + VOLUME_BUSY_WAIT_MS;
      for (;;) {
        try {
          await docker.getVolume(name).remove();
          return;
        } catch (err) {
          if (isNotFound(err)) return;
          if (isConflict(err) && Date.now() < until) {
            await sleep(200); // a removed service's container still going away
            continue;
          }
          if (isConflict(err)) {
            throw new FerryError(
              'FERRY_CONFLICT',
              `volume ${name} is still used by a container; stop the migration's jobs first`,
              { kind, ref: name },
              { cause: err },
            );
          }
          throw new FerryError('FERRY_INTERNAL', `could not remove volume ${name}: ${engineMessage(err)}`, { kind, ref: name }, { cause: err });
        }
      }
    },
    async list() {
      const volumes = (await docker.listVolumes({ filters: { label: [ROLE] } })).Volumes ?? [];
      return volumes.map((v) => ({ name: v.Name, labels: (v.Labels ?? {}) as Labels }));
    },
  };
}

function refuseUnlessKind(name: string, kind: string, role: string | undefined): void {
  if (role !== kind) {
    throw new FerryError(
      'FERRY_CONFLICT',
      `refusing to remove volume ${name} as ${kind}: it carries ${ROLE}=${role ?? 'absent'}; Ferry only removes its own ${kind} volumes, never tenant data`,
      { kind, ref: name },
    );
  }
}

/** A container's OOM flag on another node, read by a node agent; null when the container is not there. */
export async function containerOomKilled(engine: SwarmEngine, node: TenantNode, containerId: string): Promise<boolean | null> {
  if (!/^[a-f0-9]{12,64}$/.test(containerId)) return null;
  const out = await agentOn(engine, node)(
    'oom',
    `if s=$($D inspect --format '{{.State.OOMKilled}}' ${containerId} 2>/dev/null); then echo "OOM $s"; else echo ABSENT; fi`,
  );
  const line = lastLine(out, /^(OOM (true|false)|ABSENT)$/);
  return line === 'ABSENT' ? null : line === 'OOM true';
}

/** Run a node agent script on the node; its output. A unique name: agents may run at once. One a crash leaves is removed at init(). */
function agentOn(engine: SwarmEngine, node: TenantNode): (op: string, script: string) => Promise<string> {
  return (op, script) =>
    runHelperJob(engine, {
      name: `ferry-agent-${op}-${randomBytes(6).toString('hex')}`,
      role: 'node-agent',
      owner: { migrationId: '', issue: '', tenantId: '' },
      constraint: node.constraint,
      mounts: [{ bind: node.engineSocket, target: AGENT_SOCKET }],
      script: AGENT_PRELUDE + script,
      capAdd: [],
      image: engine.config.helperImage,
      what: `${op} on swarm node ${node.hostname || node.id} (through its engine at ${node.engineSocket})`,
    });
}

function agentVolumes(engine: SwarmEngine, node: TenantNode): NodeVolumes {
  const agent = agentOn(engine, node);
  return {
    async labels(names) {
      const script = names
        .map(
          (n, i) =>
            `if $D volume inspect ${checkedName(n)} >/dev/null 2>&1; then echo "V${i} $($D volume inspect --format '{{json .Labels}}' ${n})"; else echo "V${i} ABSENT"; fi; `,
        )
        .join('');
      const out = await agent('inspect', `${script}echo END`);
      lastLine(out, /^END$/);
      return names.map((_, i) => {
        const line = out.split('\n').find((l) => l.startsWith(`V${i} `));
        if (line === undefined)
          throw new FerryError('FERRY_INTERNAL', `a node agent did not answer for volume ${names[i]}; its output was: ${out.slice(-500)}`);
        const value = line.slice(`V${i} `.length).trim();
        return value === 'ABSENT' ? null : ((JSON.parse(value) as Labels | null) ?? {});
      });
    },
    async remove(name, kind) {
      checkedName(name);
      const out = await agent(
        'rm',
        `role=$($D volume inspect --format '{{index .Labels "${ROLE}"}}' ${name} 2>/dev/null) || { echo ABSENT; exit 0; }; ` +
          `[ "$role" = ${kind} ] || { echo "ROLE $role"; exit 0; }; ` +
          `ids=$($D ps -aq --filter volume=${name} --filter status=exited --filter status=created --filter status=dead); ` +
          `[ -z "$ids" ] || $D rm -f $ids >/dev/null; ` +
          `i=0; until $D volume rm ${name} >/dev/null 2>&1; do i=$((i+1)); [ $i -lt 50 ] || { $D volume rm ${name}; exit 1; }; sleep 0.2; done; echo REMOVED`,
      );
      const line = lastLine(out, /^(ABSENT|REMOVED|ROLE.*)$/);
      if (line.startsWith('ROLE')) refuseUnlessKind(name, kind, line.slice(5) || undefined);
    },
    async list() {
      const out = await agent(
        'ls',
        `for v in $($D volume ls -q --filter label=${ROLE}); do echo "VOLUME $v $($D volume inspect --format '{{json .Labels}}' $v)"; done; echo END`,
      );
      lastLine(out, /^END$/);
      return out
        .split('\n')
        .filter((l) => l.startsWith('VOLUME '))
        .map((l) => {
          const [, name, ...json] = l.split(' ');
          return { name: name ?? '', labels: (JSON.parse(json.join(' ')) ?? {}) as Labels };
        });
    },
  };
}

/** The agent's answer line; its absence means the agent's output was lost or it was not an agent. */
function lastLine(output: string, answer: RegExp): string {
  const line = output
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => answer.test(l))
    .at(-1);
  if (line === undefined) {
    throw new FerryError('FERRY_INTERNAL', `a node agent ended without its answer; its output was: ${output.slice(-500) || '(none)'}`);
  }
  return line;
}
