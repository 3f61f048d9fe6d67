/**
 * What a step's swarm service is, as the manager is asked to create it: one task, run once
 * (`replicated-job` with one completion, restart condition `none`, no update or rollback policy),
 * placed on its tenant's node, the declared peak as its limits and its reservations, labelled as a
 * migration (TR-38) with what a re-attach needs, and confined as the container substrate's jobs
 * are: the tenant's `uid:gid`, all capabilities dropped, a pids limit, only the tenant volume and
 * its scratch mounted, the job contract's environment and the request's `env`. Pure.
 */
import type Docker from 'dockerode';
import { FerryError } from '../../core/errors.ts';
import { jobLabels } from '../substrate.ts';
import type { StepSpec } from '../substrate.ts';
import { LABEL_LOG_LIMIT, LABEL_LOG_PATH, LABEL_LOG_START, LABEL_TIMEOUT_MS } from '../container/container-labels.ts';
import type { Labels } from '../container/container-labels.ts';
import { SCRATCH_MOUNT, TENANT_MOUNT } from '../container/job-container-spec.ts';

export interface JobService {
  readonly spec: StepSpec;
  readonly ref: string;
  readonly image: string;
  readonly tenantVolume: string;
  readonly user: string;
  /** Placement constraint of the tenant's node. */
  readonly constraint: string;
  /** The attempt log's size when the step starts (label `ferry.log-start`). */
  readonly logStart: number;
  readonly logLimit: number;
  readonly defaultPidsLimit: number;
}

/** The one-shot mode of every Ferry service: one task, never run twice. */
export const ONE_SHOT_MODE = { ReplicatedJob: { MaxConcurrent: 1, TotalCompletions: 1 } } as const;
export const NO_RESTART = { Condition: 'none', MaxAttempts: 0 } as const;

export function jobServiceSpec(job: JobService): Docker.CreateServiceOptions {
  const { spec, ref } = job;
  const labels: Labels = {
    ...jobLabels(spec),
    [LABEL_LOG_PATH]: spec.logPath,
    [LABEL_LOG_START]: String(job.logStart),
    [LABEL_LOG_LIMIT]: String(job.logLimit),
  };
  if (spec.timeoutMs !== undefined) labels[LABEL_TIMEOUT_MS] = String(spec.timeoutMs);
  const [entry, ...args] = spec.argv;
  if (entry === undefined) {
    throw new FerryError(
      'FERRY_INVALID_REQUEST',
      `step ${spec.stepName} of migration ${spec.migrationId} cannot run: it has no command; give its \`run\` a program and file the request again`,
      { ref },
    );
  }
  const env = { ...spec.env, FERRY_TENANT_DATA: TENANT_MOUNT, FERRY_SCRATCH: SCRATCH_MOUNT };
  const memory = spec.limits['memory'];
  const cpu = spec.limits['cpu'];
  const pids = spec.limits['pids'] ?? job.defaultPidsLimit;
  const sized = {
    ...(memory !== undefined ? { MemoryBytes: memory } : {}),
    ...(cpu !== undefined ? { NanoCPUs: cpu * 1_000_000 } : {}),
  };
  return {
    Name: ref,
    Labels: labels,
    Mode: ONE_SHOT_MODE,
    TaskTemplate: {
      ContainerSpec: {
        Image: job.image,
        // The step's argv is the whole command: it replaces the image's entrypoint, not just its CMD.
        Command: [entry],
        Args: args,
        Env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
        Labels: labels,
        User: job.user,
        // The job's host name is its node's (a swarm template), so a job can tell where it ran.
        Hostname: '{{.Node.Hostname}}',
        TTY: false,
        OpenStdin: false,
        HealthCheck: { Test: ['NONE'] },
        // allowRoot keeps the engine's default capabilities; others keep none. (API 1.41.)
        ...(spec.tenant.allowRoot ? {} : { CapabilityDrop: ['ALL'] }),
        // Exactly these two named volumes: no bind mount, so never the engine's socket.
        Mounts: [
          { Type: 'volume', Source: job.tenantVolume, Target: TENANT_MOUNT },
          { Type: 'volume', Source: spec.scratchRef, Target: SCRATCH_MOUNT },
        ],
      },
      Resources: {
        // Pids in Limits: API 1.41 (Docker 20.10); the typings predate it.
        Limits: { ...sized, Pids: pids } as Docker.ResourceRequirements['Limits'],
        // Reserved as much as the limit: the swarm places the task only where its peak fits.
        Reservations: sized,
      },
      RestartPolicy: NO_RESTART,
      Placement: { Constraints: [job.constraint] },
    },
  } as Docker.CreateServiceOptions;
}
