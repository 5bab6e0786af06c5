import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { systemClock } from '../../src/clock';
import { MemorySagaLog } from '../../src/saga-log/memory';
import { PostgresSagaLog } from '../../src/saga-log/postgres';
import type { SagaEvent, SagaLog, SagaRecord } from '../../src/saga-log/saga-log';
import { SqliteSagaLog } from '../../src/saga-log/sqlite';
import type { TestPostgres } from '../helpers/postgres';
import { startPostgres } from '../helpers/postgres';

/**
 * One contract, every store (memory, SQLite on a file, PostgreSQL on a real server): what one
 * saga appends can fail only that saga's append, however the store batches its writes.
 */
jest.setTimeout(60_000);

let pg: TestPostgres;
const dirs: string[] = [];
beforeAll(async () => {
  pg = await startPostgres();
});
afterAll(async () => {
  await pg?.stop();
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
];

const started = (body: unknown = { guest: 'Ada' }): SagaEvent => ({
  type: 'saga.started',
  definition: 'book-trip',
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
});
