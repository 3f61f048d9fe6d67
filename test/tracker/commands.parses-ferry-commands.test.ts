import { test } from 'node:test';
import assert from 'node:assert/strict';
import { authorise, parseCommandComment, parseCommandLine, requiredRole, roleOf } from '../../src/tracker/commands.ts';

void test('approve, cancel and status parse without a reason; trailing text is kept as a note', () => {
  assert.deepEqual(parseCommandComment('LGTM\n/ferry approve'), { ok: true, command: { name: 'approve', note: null, line: '/ferry approve' } });
  assert.deepEqual(parseCommandComment('/ferry cancel wrong tenant'), {
    ok: true,
    command: { name: 'cancel', note: 'wrong tenant', line: '/ferry cancel wrong tenant' },
  });
  assert.deepEqual(parseCommandComment('  /ferry Status  '), { ok: true, command: { name: 'status', note: null, line: '/ferry Status' } });
});

void test('the four recovery actions take the rest of the line as the reason', () => {
  for (const name of ['resume', 'wipe-and-retry', 'accept-partial', 'abandon'] as const) {
    const parsed = parseCommandComment(`Source host fixed.\r\n/ferry ${name}   disk was full, freed space  \r\nthanks`);
    assert.deepEqual(parsed, { ok: true, command: { name, reason: 'disk was full, freed space', line: `/ferry ${name}   disk was full, freed space` } });
  }
});

void test('a recovery action without a reason is refused with a sentence saying so', () => {
  const parsed = parseCommandLine('/ferry resume');
  assert.equal(parsed.ok, false);
  assert.equal(parsed.ok ? '' : parsed.error.code, 'FERRY_MISSING_REASON');
  assert.match(parsed.ok ? '' : parsed.error.message, /^\/ferry resume needs a reason on the same line, e\.g\. `\/ferry resume .+`/);
});

void test('an unknown command is refused and the valid commands are listed', () => {
  const parsed = parseCommandLine('/ferry retry now');
  assert.deepEqual(parsed, {
    ok: false,
    error: {
      code: 'FERRY_UNKNOWN_COMMAND',
      line: '/ferry retry now',
      message:
        '/ferry retry is not a command; the commands are /ferry approve, /ferry cancel, /ferry status, /ferry wipe-and-retry <reason>, /ferry resume <reason>, /ferry accept-partial <reason>, /ferry abandon <reason>',
    },
  });
  const bare = parseCommandLine('/ferry');
  assert.match(bare.ok ? '' : bare.error.message, /^\/ferry needs a command; the commands are /);
});

void test('comments without a /ferry line are not commands', () => {
  assert.equal(parseCommandComment('Thanks, looks good'), null);
  assert.equal(parseCommandComment('/ferryapprove'), null);
  assert.equal(parseCommandComment('please run /ferry approve'), null);
  assert.equal(parseCommandComment('> /ferry approve\nquoted from above'), null);
});

void test('/ferry lines inside fenced code blocks are documentation, not commands', () => {
  assert.equal(parseCommandComment('To resume, write:\n```\n/ferry resume <reason>\n```\n'), null);
  assert.deepEqual(parseCommandComment('~~~\n/ferry abandon x\n~~~\n/ferry status')?.ok, true);
});

void test('two commands in one comment are refused as a whole', () => {
  const parsed = parseCommandComment('/ferry approve\n/ferry cancel');
  assert.equal(parsed?.ok, false);
  assert.equal(parsed?.ok === false ? parsed.error.code : '', 'FERRY_TOO_MANY_COMMANDS');
  assert.match(parsed?.ok === false ? parsed.error.message : '', /post one command per comment/);
});

void test('status needs a filer; approve, cancel and every action need an operator', () => {
  assert.equal(requiredRole('status'), 'filer');
  for (const name of ['approve', 'cancel', 'resume', 'wipe-and-retry', 'accept-partial', 'abandon'] as const) assert.equal(requiredRole(name), 'operator');
  const parsed = parseCommandLine('/ferry abandon no longer needed');
  assert.ok(parsed.ok);
  assert.equal(requiredRole(parsed.command), 'operator');
});

void test('authorise follows admin ⊇ operator ⊇ filer, with case-insensitive names', () => {
  const config = { filers: ['dana'], operators: ['Olav'], admins: ['ada'] };
  assert.deepEqual(authorise('olav', 'operator', config), { ok: true, role: 'operator' });
  assert.deepEqual(authorise('OLAV', 'filer', config), { ok: true, role: 'operator' });
  assert.deepEqual(authorise('ada', 'operator', config), { ok: true, role: 'admin' });
  assert.deepEqual(authorise('dana', 'filer', config), { ok: true, role: 'filer' });
  assert.deepEqual(authorise('dana', 'operator', config), {
    ok: false,
    code: 'FERRY_FORBIDDEN',
    message:
      "dana is not an operator on this tracker (only filer); ask a Ferry admin to add dana to the operators in Ferry's tracker configuration, or ask an operator to do it",
  });
  assert.equal(authorise('mallory', 'filer', config).ok, false);
  assert.equal(authorise('olav', 'admin', config).ok, false);
});

void test('with nothing configured nobody is authorised (fail closed)', () => {
  assert.equal(authorise('anyone', 'filer', {}).ok, false);
  assert.equal(roleOf('', { filers: ['*'] }), null);
});

void test("'*' opens filing and status to everyone, but never operator or admin rights", () => {
  assert.deepEqual(authorise('stranger', 'filer', { filers: ['*'] }), { ok: true, role: 'filer' });
  assert.equal(authorise('stranger', 'operator', { filers: ['*'], operators: ['*'], admins: ['*'] }).ok, false);
});
