/** The service's own health and its Prometheus metrics, with no token needed. */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { call, removeDir, request, sh, startFerry, type Ferry } from '../support/harness.ts';

void describe('health and metrics', () => {
  let ferry: Ferry;

  before(async () => {
    ferry = await startFerry();
  });

  after(async () => {
    await ferry.stop();
    removeDir(ferry.dataDir);
  });

  void test('GET /healthz is 200 {ok: true}', async () => {
    const res = await call(ferry.url, null, 'GET', '/healthz');
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { ok: true });
  });

  void test('GET /metrics is Prometheus text with ferry_ metrics, counting rejections', async () => {
    // One rejection at filing, so the rejection counter has a sample with its labels.
    const rejected = await ferry.api('POST', '/v1/migrations', request('ghost', [{ name: 'a', run: sh('true') }]));
    assert.equal(rejected.status, 422);
    const res = await call(ferry.url, null, 'GET', '/metrics');
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
    const text = res.body as string;
    for (const name of [
      'ferry_transitions_total',
      'ferry_admission_rejections_total',
      'ferry_attempts_running',
      'ferry_queue_to_start_seconds',
      'ferry_artifacts_removed_total',
    ]) {
      assert.match(text, new RegExp(`^# TYPE ${name} `, 'm'), `${name} is exported`);
    }
    assert.match(text, /^ferry_admission_rejections_total\{where="filing",code="UNKNOWN_TENANT"\} 1$/m);
    assert.match(text, /^ferry_attempts_running 0$/m);
  });
});
