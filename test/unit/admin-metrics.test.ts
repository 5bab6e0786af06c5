import fs from 'node:fs';
import path from 'node:path';
import { Metrics, timedSagaLog } from '../../src/admin/metrics';
import { MemorySagaLog } from '../../src/saga-log/memory';

/** docs/metrics.md lists exactly the metrics src/admin/metrics.ts defines; values follow the Observer calls. */

const metrics = () => new Metrics({ inFlight: () => 2, definitionsLoaded: () => 1, processMetrics: false });

/** Sum of the samples of `name` whose labels include `labels`, from the exposition text. */
async function value(m: Metrics, name: string, labels: Record<string, string> = {}): Promise<number> {
  let sum = 0;
  for (const line of (await m.render()).split('\n')) {
    const match = /^(\w+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const has = Object.entries(labels).every(([k, v]) => (match[2] ?? '').includes(`${k}="${v}"`));
    if (has) sum += Number(match[3]);
  }
  return sum;
}

describe('metrics', () => {
  it('are documented in docs/metrics.md, every one, and nothing else', async () => {
    const doc = fs.readFileSync(path.join(__dirname, '..', '..', 'docs', 'metrics.md'), 'utf8');
    const documented = [...doc.matchAll(/^\| `(sagamesh_[a-z_]+)`/gm)].map((m) => m[1]).sort();
    const defined = (await metrics().registry.getMetricsAsJSON()).map((m) => m.name).sort();
    expect(documented).toEqual(defined);
  });

  it('move with the Observer calls', async () => {
    const m = metrics();
    m.sagaStarted('trip');
    m.sagaFinished('trip', 'compensated', 1500);
    m.sagaRejected('trip', 'SAGAMESH_ERR_INPUT_INVALID');
    m.callCompleted({
      definition: 'trip',
      step: 'hotel',
      kind: 'action',
      attempt: 1,
      outcome: 'retryable',
      durationMs: 20,
    });
    m.callCompleted({
      definition: 'trip',
      step: 'hotel',
      kind: 'action',
      attempt: 2,
      outcome: 'success',
      durationMs: 30,
    });
    m.callCompleted({
      definition: 'trip',
      step: 'hotel',
      kind: 'compensation',
      attempt: 1,
      outcome: 'success',
      durationMs: 5,
    });
    m.streamOpened();
    m.streamOpened();
    m.streamClosed('cancelled');
    m.definitionsReloaded('rejected', ['SAGAMESH_ERR_DEF_SCHEMA', 'SAGAMESH_ERR_DEF_SCHEMA']);

    expect(await value(m, 'sagamesh_sagas_started_total', { definition: 'trip' })).toBe(1);
    expect(await value(m, 'sagamesh_sagas_finished_total', { status: 'compensated' })).toBe(1);
    expect(await value(m, 'sagamesh_sagas_finished_total', { status: 'failed' })).toBe(1);
    expect(await value(m, 'sagamesh_sagas_rejected_total', { code: 'SAGAMESH_ERR_INPUT_INVALID' })).toBe(1);
    expect(await value(m, 'sagamesh_step_retries_total', { step: 'hotel', kind: 'action' })).toBe(1);
    expect(await value(m, 'sagamesh_compensations_total', { step: 'hotel', outcome: 'success' })).toBe(1);
    expect(await value(m, 'sagamesh_extproc_streams_active')).toBe(1);
    expect(await value(m, 'sagamesh_extproc_streams_closed_total', { reason: 'cancelled' })).toBe(1);
    expect(
      await value(m, 'sagamesh_definition_reload_errors_total', { code: 'SAGAMESH_ERR_DEF_SCHEMA' }),
    ).toBe(2);
    expect(await value(m, 'sagamesh_sagas_in_flight')).toBe(2);
    const text = await m.render();
    expect(text).toContain(
      'sagamesh_step_duration_seconds_count{definition="trip",step="hotel",kind="action",outcome="success"} 1',
    );
    expect(text).toContain('sagamesh_saga_duration_seconds_sum{definition="trip",status="compensated"} 1.5');
  });

  it('time every saga log operation, successful or not, and keep its results', async () => {
    const m = metrics();
    let t = 0;
    const clock = { now: () => 0, setTimeout, clearTimeout: () => undefined };
    const log = timedSagaLog(new MemorySagaLog(clock), m, () => (t += 2));
    const record = await log.append('s', { type: 'saga.finished', status: 'succeeded' });
    expect(record.seq).toBe(1);
    expect(await log.history('s')).toHaveLength(1);
    const failing = timedSagaLog(
      Object.assign(new MemorySagaLog(clock), { ping: () => Promise.reject(new Error('down')) }),
      m,
    );
    await expect(failing.ping()).rejects.toThrow('down');
    const text = await m.render();
    expect(text).toContain(
      'sagamesh_store_operation_duration_seconds_count{operation="append",result="ok"} 1',
    );
    expect(text).toContain(
      'sagamesh_store_operation_duration_seconds_sum{operation="append",result="ok"} 0.002',
    );
    expect(text).toContain(
      'sagamesh_store_operation_duration_seconds_count{operation="ping",result="error"} 1',
    );
  });
});
