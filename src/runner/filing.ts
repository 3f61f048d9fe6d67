/**
 * Filing and approval: the gate at filing (check, file) and at approval, and the refusal of a
 * closed issue. Each answers with the tenant the gate judged as well, so that the API shows its
 * node without reading it again.
 */
import { randomBytes } from 'node:crypto';
import { describeRejection } from '../core/admission.ts';
import { FerryError } from '../core/errors.ts';
import type { IssueDefaults } from '../core/issue-ref.ts';
import { newMigrationIdText } from '../core/migration-id.ts';
import { parseMigrationRequest } from '../core/request-schema.ts';
import type { Verdict } from '../core/types.ts';
import type { MigrationRecord, TenantRecord } from '../store/records.ts';
import { RejectedError, wrongState } from './errors.ts';
import { runGate, type LimitsOfNode } from './gate.ts';
import { SYSTEM, type Actor, type RunnerContext } from './runner-context.ts';

/** A migration as filing or approval left it, with its tenant as the gate read it then (null: none). */
export interface Admitted {
  readonly migration: MigrationRecord;
  readonly tenant: TenantRecord | null;
}

export class Filing {
  private readonly ctx: RunnerContext;
  private readonly limitsOf: LimitsOfNode;
  private readonly issueDefaults: IssueDefaults | undefined;

  constructor(ctx: RunnerContext, limitsOf: LimitsOfNode, issueDefaults: IssueDefaults | undefined) {
    this.ctx = ctx;
    this.limitsOf = limitsOf;
    this.issueDefaults = issueDefaults;
  }

  /** Filing-time verdict; changes nothing. Throws FERRY_INVALID_REQUEST for a bad document. */
  async check(document: unknown): Promise<Verdict> {
    const { ctx } = this;
    const request = parseMigrationRequest(document, this.issueDefaults);
    const { verdict } = await runGate(ctx.store, this.limitsOf, request.tenant, request.peak, ctx.now());
    if (!verdict.ok) for (const r of verdict.reasons) ctx.metrics.rejections.inc({ where: 'check', code: r.code });
    return verdict;
  }

  /** File a request: admitted → a new migration in `filed`; refused → RejectedError and nothing stored. */
  async file(document: unknown, actor: Actor): Promise<Admitted> {
    const { ctx } = this;
    const request = parseMigrationRequest(document, this.issueDefaults);
    const { verdict, tenant } = await runGate(ctx.store, this.limitsOf, request.tenant, request.peak, ctx.now());
    if (!verdict.ok) {
      // A closed issue is the answer before the gate's reasons, as it is when the gate passes.
      if (await this.isClosed(request.issue)) throw filingOnClosedIssue(request.issue);
      for (const r of verdict.reasons) ctx.metrics.rejections.inc({ where: 'filing', code: r.code });
      throw new RejectedError(verdict, null);
    }
    // No read of the issue first: the insert checks it is open in the same write
    // (FERRY_ISSUE_CLOSED), which a read before could not make sure of anyway.
    const id = newMigrationIdText(Date.now(), randomBytes(4).toString('hex'));
    const migration = await ctx.store.insertMigration(
      { id, issue: request.issue, tenant: request.tenant, request, verdict, filedBy: actor.name },
      { actor: actor.name, kind: 'file', detail: { verdict } },
      ctx.now(),
    );
    ctx.metrics.transitions.inc({ to: 'filed' });
    return { migration, tenant };
  }

  /**
   * filed → approved, then the gate: → queued, or → rejected with the gate's reasons. `seen`: the
   * migration as the caller read it just now (its state is checked again by the compare-and-set).
   */
  async approve(id: string, actor: Actor, seen?: MigrationRecord): Promise<Admitted> {
    const { ctx } = this;
    // `filed` is entered only by filing, so a record seen in it that moved since fails the
    // compare-and-set below exactly as one read again here would.
    const m = seen?.id === id ? seen : await ctx.store.requireMigration(id);
    if (m.state !== 'filed') throw wrongState(m, 'approve', 'filed');
    await this.refuseOnClosedIssue(m.issue, 'approve');
    // The gate runs before the approval is recorded, so both moves commit together.
    const { verdict, tenant } = await runGate(ctx.store, this.limitsOf, m.tenant, m.peak, ctx.now());
    const approved = { event: { actor: actor.name, kind: 'approve' } as const };
    if (!verdict.ok) {
      for (const r of verdict.reasons) ctx.metrics.rejections.inc({ where: 'gate', code: r.code });
      await ctx.store.transitions({
        id,
        from: 'filed',
        moves: [approved, { patch: { verdict }, event: { actor: SYSTEM, kind: 'reject', reason: describeRejection(verdict), detail: { verdict } } }],
        now: ctx.now(),
      });
      ctx.metrics.transitions.inc({ to: 'rejected' });
      throw new RejectedError(verdict, id, `approved, but the admission gate rejected it: ${describeRejection(verdict)}`);
    }
    const queued = await ctx.store.transitions({
      id,
      from: 'filed',
      moves: [approved, { patch: { verdict }, event: { actor: SYSTEM, kind: 'gate-pass', detail: { verdict } } }],
      now: ctx.now(),
    });
    ctx.metrics.transitions.inc({ to: 'queued' });
    ctx.queuedAt.set(id, performance.now());
    ctx.poke();
    return { migration: queued, tenant };
  }

  /** FERRY_ISSUE_CLOSED when `issue` is closed: `what` is not possible then. */
  async refuseOnClosedIssue(issue: string, what: string): Promise<void> {
    if (await this.isClosed(issue)) {
      throw new FerryError(
        'FERRY_ISSUE_CLOSED',
        `issue ${issue} is closed, so ${what} is not possible: a closed issue's migrations are cancelled and torn down`,
        { issue },
      );
    }
  }

  private async isClosed(issue: string): Promise<boolean> {
    return Boolean((await this.ctx.store.getIssue(issue))?.closedAt);
  }
}

/** The store's own refusal of a filing on a closed issue, word for word. */
function filingOnClosedIssue(issue: string): FerryError {
  return new FerryError('FERRY_ISSUE_CLOSED', `issue ${issue} is closed; migrations are filed on open issues only (open a new one)`, { issue });
}
