import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import type { Clock } from '../../src/clock';
import type { FinishedEvent, SagaEvent, SagaStatus, StartedEvent } from '../../src/runtime/journal';
import { SqliteSagaLog } from '../../src/saga-log/sqlite';
import { countByStatus } from '../helpers/saga-log-counts';

/**
 * The embedded saga log on real files (one temp directory per test): the journal, summaries and
 * queries, group commit, definitions, Idempotency-Keys, retention, the exclusive lock, reopening
 * and damaged files.
 */

class FakeClock implements Clock {
  constructor(public t = 1_000_000) {}
  now(): number {
    return this.t;
  }
  setTimeout(fn: (...args: unknown[]) => void, ms: number): unknown {
    return setTimeout(fn, ms);
  }
  clearTimeout(id: unknown): void {
    clearTimeout(id as NodeJS.Timeout);
  }
}

const started = (
  definition = 'book-trip',
  version = 'v1',
  body: unknown = { guest: 'Ada' },
): StartedEvent => ({
  type: 'saga.started',
  definition,
  version,
  request: { method: 'POST', path: '/trips', query: {}, headers: {}, body },
});
const dispatched = (step: string, attempt = 1): SagaEvent => ({
  type: 'call.dispatched',
  step,
  kind: 'action',
  attempt,
  replay: false,
});
const finished = (status: SagaStatus): FinishedEvent => ({ type: 'saga.finished', status });
const compensating: SagaEvent = {
  type: 'saga.compensating',
  failedStep: 'car',
  error: { code: 'SAGAMESH_ERR_STEP_REJECTED', message: 'car' },
};

let dir: string;
let file: string;
let clock: FakeClock;
const open: SqliteSagaLog[] = [];

function openLog(f = file): SqliteSagaLog {
  const log = SqliteSagaLog.open({ file: f }, clock);
  open.push(log);
  return log;
}

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sagamesh-sqlite-unit-'));
  file = path.join(dir, 'nested', 'sagamesh.db');
  clock = new FakeClock();
});

afterEach(async () => {
  for (const log of open.splice(0)) await log.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Runs a saga to `status` through the log, at the clock's current time. */
async function sagaTo(log: SqliteSagaLog, id: string, status: SagaStatus, definition = 'book-trip') {
  await log.append(id, started(definition));
  if (status === 'running') return;
  if (status === 'compensating' || status === 'compensated' || status === 'stuck')
    await log.append(id, compensating);
  if (status !== 'compensating') await log.append(id, finished(status));
}

describe('SqliteSagaLog', () => {
  it('creates the file (and its directory) in WAL mode', async () => {
    const log = openLog();
    expect(fs.existsSync(file)).toBe(true);
    await log.close();
    const db = new Database(file, { readonly: true });
    try {
      expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    } finally {
      db.close();
    }
  });

  it('appends records with per-saga sequence numbers and the clock time, and reads them back in order', async () => {
    const log = openLog();
    const a1 = await log.append('a', started());
    clock.t += 5;
    const b1 = await log.append('b', started());
    const a2 = await log.append('a', dispatched('hotel'));
    clock.t += 5;
    const a3 = await log.append('a', finished('succeeded'));
    expect([a1.seq, a2.seq, a3.seq, b1.seq]).toEqual([1, 2, 3, 1]);
    expect(a1).toMatchObject({ ...started(), sagaId: 'a', seq: 1, at: 1_000_000 });
    expect(a3.at).toBe(1_000_010);

    const history = await log.history('a');
    expect(history).toEqual([a1, a2, a3]);
    expect(await log.history('nobody')).toEqual([]);
  });

  it('keeps a summary that follows the status records', async () => {
    const log = openLog();
    await log.append('s', started('book-trip', 'v7'));
    expect(await log.summary('s')).toEqual({
      sagaId: 's',
      definition: 'book-trip',
      version: 'v7',
      status: 'running',
      startedAt: 1_000_000,
      updatedAt: 1_000_000,
    });
    clock.t += 10;
    await log.append('s', dispatched('hotel'));
    expect(await log.summary('s')).toMatchObject({ status: 'running', updatedAt: 1_000_010 });
    clock.t += 10;
    await log.append('s', compensating);
    expect((await log.summary('s'))?.status).toBe('compensating');
    clock.t += 10;
    await log.append('s', finished('compensated'));
    expect(await log.summary('s')).toMatchObject({
      status: 'compensated',
      startedAt: 1_000_000,
      updatedAt: 1_000_030,
    });
    expect(await log.summary('nobody')).toBeUndefined();
  });

  it('lists newest first, filtered by status, definition and start time, with a bounded limit', async () => {
    const log = openLog();
    await sagaTo(log, 'old', 'succeeded');
    clock.t += 100;
    await sagaTo(log, 'mid', 'compensated', 'plan-itinerary');
    clock.t += 100;
    await sagaTo(log, 'new', 'running');

    const ids = async (opts?: Parameters<SqliteSagaLog['list']>[0]) =>
      (await log.list(opts)).map((s) => s.sagaId);
    expect(await ids()).toEqual(['new', 'mid', 'old']);
    expect(await ids({ status: 'compensated' })).toEqual(['mid']);
    expect(await ids({ definition: 'book-trip' })).toEqual(['new', 'old']);
    expect(await ids({ since: 1_000_100 })).toEqual(['new', 'mid']);
    expect(await ids({ status: 'running', definition: 'book-trip', since: 1_000_000 })).toEqual(['new']);
    expect(await ids({ limit: 2 })).toEqual(['new', 'mid']);
    expect(await ids({ status: 'stuck' })).toEqual([]);

    await Promise.all(Array.from({ length: 1100 }, (_, i) => log.append(`bulk-${i}`, started())));
    expect(await log.list()).toHaveLength(100);
    expect(await log.list({ limit: 5000 })).toHaveLength(1000);
  });

  it('counts sagas in every status, zeros included', async () => {
    const log = openLog();
    await sagaTo(log, 'a', 'succeeded');
    await sagaTo(log, 'b', 'succeeded');
    await sagaTo(log, 'c', 'stuck');
    await sagaTo(log, 'd', 'compensating');
    await sagaTo(log, 'e', 'running');
    expect(await countByStatus(log)).toEqual({
      running: 1,
      succeeded: 2,
      compensating: 1,
      compensated: 0,
      stuck: 1,
    });
  });

  it('group-commits every append of one tick in one transaction, each resolving only after it', async () => {
    const log = openLog();
    const transaction = jest.spyOn(Database.prototype, 'transaction');
    try {
      const sagas = 200;
      const pending = [];
      for (let i = 0; i < sagas; i++) pending.push(log.append(`g-${i}`, started()));
      for (let i = 0; i < sagas; i++) pending.push(log.append(`g-${i}`, dispatched('hotel')));
      for (let i = 0; i < sagas; i++) pending.push(log.append(`g-${i}`, finished('succeeded')));
      let resolved = 0;
      for (const p of pending) void p.then(() => (resolved += 1));
      // Nothing is acknowledged before the commit.
      await Promise.resolve();
      expect(resolved).toBe(0);
      const records = await Promise.all(pending);
      expect(transaction).toHaveBeenCalledTimes(1);
      expect(records.slice(0, 3).map((r) => r.seq)).toEqual([1, 1, 1]);
      for (let i = 0; i < sagas; i++) {
        expect((await log.history(`g-${i}`)).map((r) => [r.seq, r.type])).toEqual([
          [1, 'saga.started'],
          [2, 'call.dispatched'],
          [3, 'saga.finished'],
        ]);
      }
      expect((await countByStatus(log)).succeeded).toBe(sagas);
    } finally {
      transaction.mockRestore();
    }
  });

  it('keeps each saga in append order under concurrent writers across ticks', async () => {
    const log = openLog();
    const writers = Array.from({ length: 20 }, async (_, w) => {
      const id = `w-${w}`;
      await log.append(id, started());
      for (let attempt = 1; attempt <= 10; attempt++) {
        await log.append(id, dispatched('hotel', attempt));
        if (attempt % 3 === 0) await new Promise((r) => setImmediate(r));
      }
      await log.append(id, finished('succeeded'));
    });
    await Promise.all(writers);
    for (let w = 0; w < 20; w++) {
      const history = await log.history(`w-${w}`);
      expect(history.map((r) => r.seq)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
      expect(
        history.filter((r) => r.type === 'call.dispatched').map((r) => ('attempt' in r ? r.attempt : 0)),
      ).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
    }
  });

  it('rejects the appends a full disk cannot take, commits nothing of them, and stays usable', async () => {
    const log = openLog();
    await log.append('before', started());
    // The file may not grow (what a full disk does), and these records need new pages.
    const db = (log as unknown as { db: Database.Database }).db;
    db.pragma(`max_page_count = ${String(db.pragma('page_count', { simple: true }))}`);
    const big = (id: string) => log.append(id, started('book-trip', 'v1', { blob: 'x'.repeat(100_000) }));
    const outcomes = await Promise.allSettled([big('a'), big('b')]);
    for (const o of outcomes)
      expect(o).toMatchObject({ status: 'rejected', reason: { code: 'SAGAMESH_ERR_STORE_UNAVAILABLE' } });
    expect(await log.history('a')).toEqual([]);
    expect(await log.history('b')).toEqual([]);
    db.pragma('max_page_count = 1073741823');
    await expect(big('a')).resolves.toMatchObject({ seq: 1 });
    expect(await log.history('before')).toHaveLength(1);
  });

  it('rejects only a second start of a saga, and commits the rest of its batch', async () => {
    const log = openLog();
    await log.append('dup', started());
    const again = log.append('dup', started()); // a constraint, under the saga's own savepoint
    const other = log.append('innocent', started());
    await expect(again).rejects.toMatchObject({ code: 'SAGAMESH_ERR_INTERNAL' });
    await expect(other).resolves.toMatchObject({ seq: 1 });
    expect(await log.history('dup')).toHaveLength(1);
    await expect(log.append('dup', dispatched('hotel'))).resolves.toMatchObject({ seq: 2 });
  });

  it('saves each definition version once and loads it by version', async () => {
    const log = openLog();
    const def = { name: 'book-trip', version: 'abc', file: '/sagas/book-trip.yaml', source: 'kind: Saga\n' };
    await log.saveDefinition(def);
    await log.saveDefinition({ ...def, source: 'changed' });
    expect(await log.loadDefinition('abc')).toEqual(def);
    expect(await log.loadDefinition('nope')).toBeUndefined();
  });

  it('claims the unfinished sagas, oldest first', async () => {
    const log = openLog();
    await sagaTo(log, 'done', 'succeeded');
    clock.t += 1;
    await sagaTo(log, 'first', 'running');
    clock.t += 1;
    await sagaTo(log, 'second', 'compensating');
    clock.t += 1;
    await sagaTo(log, 'stuck', 'stuck');
    expect(await log.claimUnfinished()).toEqual(['first', 'second']);
    expect(await log.renewLeases()).toEqual([]);
  });

  // What keys do in every store is the contract test's (test/integration/saga-log-contract.test.ts).
  describe('Idempotency-Keys', () => {
    const key = (k: string, requestHash = 'h') => ({
      definition: 'book-trip',
      key: k,
      requestHash,
      expiredBefore: 0,
    });

    it('releases at boot the keys an older sagamesh reserved for sagas it never started', async () => {
      const log = openLog();
      await log.start('kept', started(), key('k1'));
      await log.close();
      // What an older sagamesh left when it died between reserving a key and starting its saga.
      const db = new Database(file);
      db.prepare(
        "INSERT INTO idempotency_keys (definition, key, request_hash, saga_id, created_at) VALUES ('book-trip', 'k2', 'h', 'never', ?)",
      ).run(clock.t);
      db.close();

      const reopened = openLog();
      expect(await reopened.claimUnfinished()).toEqual(['kept']);
      expect(await reopened.start('again', started(), key('k1'))).toMatchObject({ held: { sagaId: 'kept' } });
      // The leftover is gone: the retry runs afresh.
      expect(await reopened.start('fresh', started(), key('k2'))).toMatchObject({
        started: { sagaId: 'fresh' },
      });
    });
  });

  it('prunes finished sagas (with their records and keys) and old keys by their cutoffs, never unfinished sagas', async () => {
    const log = openLog();
    const key = (k: string) => ({ definition: 'd', key: k, requestHash: 'h', expiredBefore: 0 });
    await log.start('old-done', started(), key('old'));
    await log.finish('old-done', { type: 'saga.finished', status: 'succeeded' });
    await sagaTo(log, 'old-stuck', 'stuck');
    await sagaTo(log, 'old-running', 'running');
    await sagaTo(log, 'old-compensating', 'compensating');
    clock.t += 1000;
    await log.start('new-done', started(), key('new'));
    await log.finish('new-done', { type: 'saga.finished', status: 'compensated' });
    clock.t += 1000;
    await log.start('young-key', started(), key('young'));
    await log.finish('young-key', { type: 'saga.finished', status: 'succeeded' });

    // old-done's key goes with it; new-done's by its age; young-key's stays with its saga.
    expect(await log.prune({ sagasFinishedBefore: 1_000_500, keysCreatedBefore: 1_001_500 })).toEqual({
      sagas: 2,
      keys: 2,
    });
    const left = (await log.list()).map((s) => s.sagaId).sort();
    expect(left).toEqual(['new-done', 'old-compensating', 'old-running', 'young-key']);
    expect(await log.history('old-done')).toEqual([]);
    expect(await log.history('old-stuck')).toEqual([]);
    expect(await log.history('old-running')).toHaveLength(1);
    expect(await log.start('z1', started(), key('old'))).toMatchObject({ started: { sagaId: 'z1' } });
    expect(await log.start('z2', started(), key('new'))).toMatchObject({ started: { sagaId: 'z2' } });
    expect(await log.start('z3', started(), key('young'))).toMatchObject({ held: { sagaId: 'young-key' } });
    expect(await log.prune({ sagasFinishedBefore: 1_000_500, keysCreatedBefore: 0 })).toEqual({
      sagas: 0,
      keys: 0,
    });
  });

  it('holds the file exclusively: a second instance fails with STORE_UNAVAILABLE', async () => {
    const first = openLog();
    await first.append('a', started());
    let error: unknown;
    try {
      openLog();
    } catch (err) {
      error = err;
    }
    expect(error).toMatchObject({ code: 'SAGAMESH_ERR_STORE_UNAVAILABLE' });
    expect(String(error)).toContain('in use by another sagamesh instance');
    // The first instance is undisturbed.
    await expect(first.append('a', dispatched('hotel'))).resolves.toMatchObject({ seq: 2 });
    await first.close();
    expect(() => openLog()).not.toThrow();
  });

  it('keeps everything across close and reopen, and continues each saga sequence', async () => {
    const log = openLog();
    await log.append('a', started());
    await log.append('a', dispatched('hotel'));
    await log.saveDefinition({ name: 'book-trip', version: 'v1', file: 'f', source: 's' });
    const key = { definition: 'book-trip', key: 'k', requestHash: 'h', expiredBefore: 0 };
    await log.start('keyed', started(), key);
    await log.finish('keyed', finished('succeeded'), { status: 201, headers: {}, body: 'ok' });
    // An append not awaited before close is still flushed by close.
    const last = log.append('b', started());
    await log.close();
    await expect(last).resolves.toMatchObject({ sagaId: 'b', seq: 1 });
    await expect(log.append('a', finished('succeeded'))).rejects.toMatchObject({
      code: 'SAGAMESH_ERR_STORE_UNAVAILABLE',
    });
    await expect(log.ping()).rejects.toMatchObject({ code: 'SAGAMESH_ERR_STORE_UNAVAILABLE' });

    const reopened = openLog();
    await expect(reopened.ping()).resolves.toBeUndefined();
    expect((await reopened.history('a')).map((r) => r.type)).toEqual(['saga.started', 'call.dispatched']);
    expect(await reopened.claimUnfinished()).toEqual(['a', 'b']);
    expect(await reopened.loadDefinition('v1')).toMatchObject({ source: 's' });
    expect(await reopened.start('x', started(), key)).toMatchObject({
      held: { sagaId: 'keyed', answer: { status: 201, body: 'ok' } },
    });
    await expect(reopened.append('a', finished('succeeded'))).resolves.toMatchObject({ seq: 3 });
    expect((await reopened.summary('a'))?.status).toBe('succeeded');
  });

  describe('damaged or unusable files', () => {
    it('reports a file that is not a database as STORE_CORRUPT and leaves it alone', () => {
      fs.mkdirSync(path.dirname(file), { recursive: true });
      const garbage = Buffer.from('this is not a database, just some text '.repeat(200));
      fs.writeFileSync(file, garbage);
      expect(() => openLog()).toThrow(
        expect.objectContaining({ code: 'SAGAMESH_ERR_STORE_CORRUPT' }) as Error,
      );
      expect(fs.readFileSync(file).equals(garbage)).toBe(true);
    });

    it('reports a store of a newer schema as STORE_CORRUPT', () => {
      fs.mkdirSync(path.dirname(file), { recursive: true });
      const db = new Database(file);
      db.exec('CREATE TABLE sagamesh_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)');
      db.prepare('INSERT INTO sagamesh_migrations VALUES (99, 0)').run();
      db.close();
      expect(() => openLog()).toThrow(/schema version 99 is newer/);
    });

    it('reports a record that is not JSON as STORE_CORRUPT when it is read', async () => {
      const log = openLog();
      await log.append('a', started());
      await log.close();
      const db = new Database(file);
      db.prepare("UPDATE saga_events SET data = '{not json' WHERE saga_id = 'a'").run();
      db.close();
      const reopened = openLog();
      await expect(reopened.history('a')).rejects.toMatchObject({ code: 'SAGAMESH_ERR_STORE_CORRUPT' });
    });

    it('reports a path it cannot create as STORE_UNAVAILABLE', () => {
      expect(() => openLog('/dev/null/x.db')).toThrow(
        expect.objectContaining({ code: 'SAGAMESH_ERR_STORE_UNAVAILABLE' }) as Error,
      );
      expect(() => openLog(dir)).toThrow(
        expect.objectContaining({ code: 'SAGAMESH_ERR_STORE_UNAVAILABLE' }) as Error,
      );
    });
  });
});
