/**
 * Cancelling a migration that is not final. A queued or held one moves to `cancelled` at once; a
 * running one has its job stopped first, by the node that runs it and only there, and its
 * supervisor records the end.
 */
import { FerryError } from '../core/errors.ts';
import { isTerminal } from '../core/lifecycle.ts';
import type { MigrationRecord } from '../store/records.ts';
import type { AttemptSupervisor } from './attempt-supervisor.ts';
import { wrongState } from './errors.ts';
import type { Actor, RunnerContext } from './runner-context.ts';

export class Cancellation {
  private readonly ctx: RunnerContext;
  private readonly attempts: AttemptSupervisor;

  constructor(ctx: RunnerContext, attempts: AttemptSupervisor) {
    this.ctx = ctx;
    this.attempts = attempts;
  }

  /** Cancel a non-terminal migration; a running attempt is stopped first. */
  async cancel(id: string, actor: Actor, reason: string): Promise<MigrationRecord> {
    const { store, nodeName } = this.ctx;
    for (let tries = 0; ; tries++) {
      const m = await store.requireMigration(id);
      if (isTerminal(m.state)) throw wrongState(m, 'cancel', 'filed, approved, queued, running or held');
      if (m.state === 'running') {
        const active = this.attempts.get(id);
        const owner = active ? nodeName : (await store.getAttempt(m.id, m.attempts))?.node;
        if (owner && owner !== nodeName) {
          throw new FerryError(
            'FERRY_CONFLICT',
            `migration ${id} is running on node ${owner}: only that node can stop its job; cancel it through node ${owner}'s API`,
            { id, node: owner },
          );
        }
        if (!active) {
          // Between the scheduler's start and its supervision, or just ended: look again shortly.
          if (tries >= 200) throw new FerryError('FERRY_CONFLICT', `migration ${id} is running but this runner does not supervise it; retry in a moment`);
          await new Promise((r) => setTimeout(r, 25));
          continue;
        }
        active.cancel ??= { actor: actor.name, reason };
        if (active.jobRef) await this.ctx.substrate.stop(active.jobRef);
        await active.done;
        const after = await store.requireMigration(id);
        if (after.state === 'cancelled' || isTerminal(after.state)) return after;
        continue;
      }
      try {
        return await this.ctx.move(m, { actor: actor.name, kind: 'cancel', reason });
      } catch (err) {
        // Lost a race with the scheduler (queued → running): look again.
        if (err instanceof FerryError && err.code === 'FERRY_CONFLICT' && tries < 5) continue;
        throw err;
      }
    }
  }
}
