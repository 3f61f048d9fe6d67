/**
 * `ferry serve --demo`: on a fresh data folder, show Ferry doing its job. Registers a demo tenant,
 * shows a request refused by the 2x rule, files and approves one that is admitted, and prints how
 * it ran. Idempotent: a data folder that already has the demo migration is left as it is.
 */
import { describeRejection } from './core/admission.ts';
import type { FerryService } from './service.ts';

const ISSUE = 'github:example/platform#1';
const TENANT = 'demo-shop';

export async function runDemo(service: FerryService, print: (line: string) => void): Promise<void> {
  const { runner, store } = service;
  const actor = { name: 'demo' };
  if ((await store.listMigrations({ issue: ISSUE })).length > 0) {
    print(`demo: ${ISSUE} already has its migration; see it with: npx ferry ls`);
    return;
  }
  await runner.putTenant(TENANT, { steadyState: { cpu: '500m', memory: '256Mi' } });
  print(`demo: tenant ${TENANT} registered with steady-state cpu 500m, memory 256Mi`);

  const steps = [
    {
      name: 'copy-files',
      run: [
        'sh',
        '-c',
        'for i in 1 2 3; do echo "record $i" > "$FERRY_TENANT_DATA/record-$i"; echo "::ferry::progress $i/3"; echo "::ferry::checkpoint record-$i"; done',
      ],
    },
    {
      name: 'verify',
      run: ['sh', '-c', 'test "$(ls "$FERRY_TENANT_DATA" | wc -l)" -ge 3 && echo "verified $(ls "$FERRY_TENANT_DATA" | wc -l) records"'],
      timeout: '1m',
    },
  ];
  const tooBig = await runner.check({ issue: ISSUE, tenant: TENANT, peak: { cpu: '1', memory: '1Gi' }, steps });
  print(`demo: a request for memory 1Gi is refused at filing: ${describeRejection(tooBig)}`);

  const filed = await runner.file({ issue: ISSUE, tenant: TENANT, peak: { cpu: '1', memory: '512Mi' }, steps }, actor);
  print(`demo: filed ${filed.id} (peak cpu 1, memory 512Mi: exactly 2x, admitted)`);
  await runner.approve(filed.id, actor);
  print(`demo: approved ${filed.id}; running it as a one-shot job`);
  for (let i = 0; i < 600; i++) {
    const m = await store.requireMigration(filed.id);
    if (m.state !== 'queued' && m.state !== 'running') {
      print(
        `demo: ${m.id} ${m.state}${m.heldDetail ? ` (${m.heldDetail})` : ''}; limits ${m.limitsEnforced ? 'enforced' : 'NOT enforced'}; ${m.isolated ? 'confined to its tenant' : 'NOT confined'}`,
      );
      break;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  print('demo: try  npx ferry ls   npx ferry show ' + filed.id + '   npx ferry logs ' + filed.id + '   npx ferry close-issue "' + ISSUE + '"');
}
