import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { systemClock } from '../../src/clock';
import { parseStoreUrl } from '../../src/config/store-url';
import { EtcdSagaLog } from '../../src/saga-log/etcd';
import { MemorySagaLog } from '../../src/saga-log/memory';
import { PostgresSagaLog } from '../../src/saga-log/postgres';
import type { ListCursor, SagaEvent, SagaLog, SagaRecord, StartedEvent } from '../../src/runtime/journal';
import { SqliteSagaLog } from '../../src/saga-log/sqlite';
import type { TestEtcd } from '../helpers/etcd';
import { startEtcd } from '../helpers/etcd';
import type { TestPostgres } from '../helpers/postgres';
import { startPostgres } from '../helpers/postgres';

/**
 * One contract, every store (memory, SQLite on a file, PostgreSQL on a real server, etcd on a real
 * 3-member cluster): what one
 * saga appends can fail only that saga's append, however the store batches its writes; a client's
 * Idempotency-Key is written with its saga's start, and its answer with its saga's end.
 */
jest.setTimeout(60_000);

let pg: TestPostgres;
let etcd: TestEtcd;
let etcdPrefixes = 0;
const dirs: string[] = [];
beforeAll(async () => {
  [pg, etcd] = await Promise.all([startPostgres(), startEtcd()]);
});
afterAll(async () => {
  await pg?.stop();
  await etcd?.stop();
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
});

const STORES: [string, () => Promise<SagaLog>][] = [
  ['memory', () => Promise.resolve(new MemorySagaLog(systemClock))],
  [
    'sqlite',
    () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sagamesh-contract-'));
      dirs.push(dir);
      return Promise.resolve(SqliteSagaLog.open({ file: path.join(dir, 'sagamesh.db') }, systemClock));
    },
  ],
  [
    'postgres',
    async () =>
      PostgresSagaLog.open(
        { url: await pg.createDatabase(), instanceId: 'a', leaseTtlMs: 10_000 },
        systemClock,
      ),
  ],
  [
    'etcd',
    async () => {
      // A prefix of its own per test: one cluster, a fresh log each time.
      const store = parseStoreUrl(etcd.storeUrl(`/contract-${++etcdPrefixes}/`), process.cwd());
      if (!('kind' in store) || store.kind !== 'etcd') throw new Error('not an etcd store');
      return EtcdSagaLog.open({ store, instanceId: 'a', leaseTtlMs: 10_000 }, systemClock);
    },
  ],
];

const started = (body: unknown = { guest: 'Ada' }, definition = 'book-trip'): StartedEvent => ({
  type: 'saga.started',
  definition,
  version: 'v1',
  request: { method: 'POST', path: '/trips', query: {}, headers: {}, body },
});
const dispatched = (step: string): SagaEvent => ({
  type: 'call.dispatched',
  step,
  kind: 'action',
  attempt: 1,
  replay: false,
});
/** A successful action whose answer holds `body`. */
const completed = (step: string, body: unknown): SagaEvent => ({
  type: 'call.completed',
  step,
  kind: 'action',
  attempt: 1,
  replay: false,
  outcome: 'success',
  status: 201,
  response: { status: 201, headers: {}, body },
});

/** `[[[…]]]` `depth` levels deep, built without recursion. */
function nested(depth: number): unknown {
  let value: unknown = [];
  for (let i = 1; i < depth; i++) value = [value];
  return value;
}

const settle = (appends: Promise<SagaRecord>[]) =>
  Promise.allSettled(appends).then((rs) =>
    rs.map((r) => (r.status === 'fulfilled' ? 'ok' : (r.reason as { code?: string }).code)),
  );

describe.each(STORES)('saga log contract: %s', (_, open) => {
  let log: SagaLog;
  beforeEach(async () => {
    log = await open();
  });
  afterEach(async () => {
    await log.close();
  });

  it("fails only its own saga's append when a record cannot be serialised", async () => {
    await Promise.all(['a', 'b', 'deep', 'big'].map((id) => log.append(id, started())));
    // In one tick, so every store that batches puts them in one batch.
    const outcomes = await settle([
      log.append('a', dispatched('hotel')),
      log.append('deep', completed('hotel', nested(10_000))),
      log.append('b', dispatched('hotel')),
      log.append('big', completed('hotel', { n: 10n })),
      log.append('a', dispatched('car')),
    ]);
    expect(outcomes).toEqual([
      'ok',
      'SAGAMESH_ERR_RECORD_UNSERIALIZABLE',
      'ok',
      'SAGAMESH_ERR_RECORD_UNSERIALIZABLE',
      'ok',
    ]);
    expect((await log.history('a')).map((r) => r.seq)).toEqual([1, 2, 3]);
    expect((await log.history('b')).map((r) => r.seq)).toEqual([1, 2]);
    // The offender's journal is as before, and its next record follows without a gap.
    expect((await log.history('deep')).map((r) => r.type)).toEqual(['saga.started']);
    expect((await log.append('deep', dispatched('car'))).seq).toBe(2);
    expect((await log.summary('deep'))?.status).toBe('running');
  });

  it('fails only the duplicate when a saga is started twice', async () => {
    await log.append('a', started());
    const outcomes = await settle([
      log.append('b', started()),
      log.append('a', started({ guest: 'Mallory' })),
      log.append('c', started()),
    ]);
    expect(outcomes).toEqual(['ok', 'SAGAMESH_ERR_INTERNAL', 'ok']);
    expect((await log.history('a')).map((r) => r.type)).toEqual(['saga.started']);
    expect((await log.history('a'))[0]).toMatchObject({ request: { body: { guest: 'Ada' } } });
    expect((await log.summary('c'))?.status).toBe('running');
  });

  it('keeps hostile but valid text as it came (NUL, a lone surrogate, quotes and brackets)', async () => {
    const body = { guest: 'A\u0000da', s: '\ud800', t: '"]}\\[{,' };
    await log.append('x', started(body));
    expect((await log.history('x'))[0]).toMatchObject({ request: { body } });
  });

  it('pages through a list with a cursor: newest first, every saga once, ties in started time included', async () => {
    // In one tick: most of them start in the same millisecond, so only the id orders them.
    const ids = Array.from({ length: 11 }, (_, i) => `page-${String(i).padStart(2, '0')}`);
    await Promise.all(ids.map((id) => log.append(id, started())));
    await log.append('other', started({}, 'other-saga'));
    const seen: string[] = [];
    let after: ListCursor | undefined;
    for (let page = 0; page < 10; page++) {
      const sagas = await log.list({ definition: 'book-trip', limit: 3, ...(after ? { after } : {}) });
      seen.push(...sagas.map((s) => s.sagaId));
      const last = sagas[sagas.length - 1];
      if (!last) break;
      after = { startedAt: last.startedAt, sagaId: last.sagaId };
    }
    expect(seen).toHaveLength(ids.length);
    expect(new Set(seen)).toEqual(new Set(ids));
    // The same order as one page of them all.
    expect((await log.list({ definition: 'book-trip' })).map((s) => s.sagaId)).toEqual(seen);
  });

  describe('Idempotency-Keys', () => {
    const key = (
      k: string,
      over: { requestHash?: string; expiredBefore?: number; definition?: string } = {},
    ) => ({
      definition: 'book-trip',
      key: k,
      requestHash: 'h1',
      expiredBefore: 0,
      ...over,
    });
    const answer = { status: 201, headers: { 'content-type': 'application/json' }, body: '{"ok":true}' };

    it("reserves a key with its saga's start; a start whose key is held writes nothing", async () => {
      expect(await log.start('a', started(), key('k1'))).toMatchObject({ started: { sagaId: 'a', seq: 1 } });
      expect(await log.start('b', started(), key('k1', { requestHash: 'h2' }))).toEqual({
        held: { sagaId: 'a', requestHash: 'h1' },
      });
      expect(await log.summary('b')).toBeUndefined();
      expect(await log.history('b')).toEqual([]);
      // Keys are per definition.
      expect(await log.start('c', started({}, 'other'), key('k1', { definition: 'other' }))).toMatchObject({
        started: { sagaId: 'c' },
      });
    });

    it('starts one of two sagas given one key in one batch; the other finds it holding the key', async () => {
      const outcomes = await Promise.all([
        log.start('x', started(), key('k2')),
        log.start('y', started(), key('k2')),
      ]);
      const winners = outcomes.flatMap((o) => ('started' in o ? [o.started.sagaId] : []));
      const holders = outcomes.flatMap((o) => ('held' in o ? [o.held.sagaId] : []));
      expect(winners).toHaveLength(1);
      expect(holders).toEqual(winners);
      expect((await log.list()).map((s) => s.sagaId)).toEqual(winners);
    });

    it("writes the answer with the saga's end, and keeps it for the key", async () => {
      await log.start('a', started(), key('k3'));
      await log.append('a', dispatched('hotel'));
      await log.finish('a', { type: 'saga.finished', status: 'succeeded' }, answer);
      expect(await log.summary('a')).toMatchObject({ status: 'succeeded' });
      expect(await log.start('again', started(), key('k3'))).toEqual({
        held: { sagaId: 'a', requestHash: 'h1', answer },
      });
    });

    it('re-opens a finished saga for an undo: unfinished until its new end; its key keeps its answer', async () => {
      await log.start('u', started(), key('k7'));
      await log.append('u', dispatched('hotel'));
      await log.append('u', completed('hotel', { id: 'h1' }));
      await log.finish('u', { type: 'saga.finished', status: 'succeeded' }, answer);
      const undo: SagaEvent = {
        type: 'saga.compensating',
        undo: true,
        error: { code: 'SAGAMESH_ERR_SAGA_UNDONE', message: 'undone on request' },
      };
      expect(await log.append('u', undo)).toMatchObject({ seq: 5, undo: true });
      expect(await log.summary('u')).toMatchObject({ status: 'compensating' });
      expect((await log.list({ status: 'compensating' })).map((s) => s.sagaId)).toEqual(['u']);
      // Unfinished again: what a restart recovers (claimUnfinished) and what retention keeps.
      expect(await log.prune({ sagasFinishedBefore: Date.now() + 60_000, keysCreatedBefore: 0 })).toEqual({
        sagas: 0,
        keys: 0,
      });
      await log.finish('u', { type: 'saga.finished', status: 'compensated' });
      expect(await log.summary('u')).toMatchObject({ status: 'compensated' });
      expect((await log.history('u')).map((r) => r.type)).toEqual([
        'saga.started',
        'call.dispatched',
        'call.completed',
        'saga.finished',
        'saga.compensating',
        'saga.finished',
      ]);
      expect(await log.start('again', started(), key('k7'))).toEqual({
        held: { sagaId: 'u', requestHash: 'h1', answer },
      });
    });

    it('lets a start take over an expired key, its answer cleared', async () => {
      await log.start('old', started(), key('k4'));
      await log.finish('old', { type: 'saga.finished', status: 'succeeded' }, answer);
      const later = Date.now() + 1000;
      expect(
        await log.start('new', started(), key('k4', { requestHash: 'h2', expiredBefore: later })),
      ).toMatchObject({
        started: { sagaId: 'new' },
      });
      expect(await log.start('third', started(), key('k4'))).toEqual({
        held: { sagaId: 'new', requestHash: 'h2' },
      });
    });

    it('reserves nothing for a start that fails', async () => {
      await log.append('dup', started());
      await expect(log.start('dup', started(), key('k5'))).rejects.toMatchObject({
        code: 'SAGAMESH_ERR_INTERNAL',
      });
      await expect(log.start('big', started({ n: 10n }), key('k6'))).rejects.toMatchObject({
        code: 'SAGAMESH_ERR_RECORD_UNSERIALIZABLE',
      });
      // Both keys are free: the retries start.
      expect(await log.start('retry-5', started(), key('k5'))).toMatchObject({
        started: { sagaId: 'retry-5' },
      });
      expect(await log.start('retry-6', started(), key('k6'))).toMatchObject({
        started: { sagaId: 'retry-6' },
      });
    });
  });
});
