/**
 * Starting a step's job container: everything it needs is checked first (an image, the tenant's
 * data volume, the migration's scratch, a user that is not root unless allowed), then the container
 * is created (the image pulled if the engine lacks it) and started, once.
 */
import type Docker from 'dockerode';
import { isAbsolute } from 'node:path';
import { FerryError } from '../../core/errors.ts';
import type { StepSpec } from '../substrate.ts';
import { ROLE } from './container-labels.ts';
import type { ContainerEngine } from './container-engine.ts';
import { engineMessage, isConflict, isNotFound } from './engine-errors.ts';
import { jobContainerOptions, jobUser } from './job-container-spec.ts';
import { tenantVolume, volumeLabels } from './volumes.ts';

export async function startJob(engine: ContainerEngine, spec: StepSpec, ref: string): Promise<void> {
  const image = spec.image ?? engine.config.defaultImage;
  if (!image) {
    throw new FerryError(
      'FERRY_INVALID_REQUEST',
      `step ${spec.stepName} of migration ${spec.migrationId} names no image and the container substrate has no defaultImage; add \`image:\` to the request`,
    );
  }
  const volume = tenantVolume(spec.tenant);
  const user = jobUser(spec.tenant);
  // An engine creates a missing named volume on the fly: the job would then write into a new,
  // empty, unlabelled volume instead of the tenant's data. Refuse instead.
  if ((await volumeLabels(engine.docker, volume)) === null) {
    throw new FerryError(
      'FERRY_NOT_FOUND',
      `tenant ${spec.tenant.id}'s data volume ${volume} does not exist; create it (or fix the tenant's data) before running migration ${spec.migrationId}`,
    );
  }
  const scratch = await volumeLabels(engine.docker, spec.scratchRef);
  if (scratch === null || scratch[ROLE] !== 'scratch') {
    throw new FerryError('FERRY_NOT_FOUND', `scratch volume ${spec.scratchRef} of migration ${spec.migrationId} is missing; createScratch() first`);
  }
  if (!isAbsolute(spec.logPath)) {
    throw new FerryError('FERRY_INTERNAL', `StepSpec.logPath must be an absolute host path, got ${spec.logPath}; the runner names each step's log`, { ref });
  }
  const create = jobContainerOptions({ spec, ref, image, tenantVolume: volume, user }, engine.config);

  let container: Docker.Container;
  try {
    container = await engine.docker.createContainer(create);
  } catch (err) {
    if (isNotFound(err)) {
      await pull(engine.docker, image, spec);
      container = await engine.docker.createContainer(create);
    } else if (isConflict(err)) {
      throw new FerryError(
        'FERRY_CONFLICT',
        `job container ${ref} already exists; watch it (re-attach) or remove it, Ferry never runs a step twice`,
        { ref },
        { cause: err },
      );
    } else {
      throw new FerryError('FERRY_INTERNAL', `could not create job container ${ref}: ${engineMessage(err)}`, { ref }, { cause: err });
    }
  }
  try {
    await container.start();
  } catch (err) {
    throw new FerryError('FERRY_INTERNAL', `could not start job container ${ref}: ${engineMessage(err)}`, { ref }, { cause: err });
  }
}

async function pull(docker: Docker, image: string, spec: StepSpec): Promise<void> {
  try {
    const stream = await docker.pull(image);
    await new Promise<void>((resolve, reject) => docker.modem.followProgress(stream, (err) => (err ? reject(err) : resolve())));
  } catch (err) {
    throw new FerryError(
      'FERRY_NOT_FOUND',
      `image ${image} of migration ${spec.migrationId} is not on the engine and could not be pulled (${engineMessage(err)}); load or build it on the engine, or fix \`image:\``,
      { image },
      { cause: err },
    );
  }
}
