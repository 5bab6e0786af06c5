import { systemClock } from '../../src/clock';
import { parseStoreUrl } from '../../src/config/store-url';
import { EtcdSagaLog } from '../../src/saga-log/etcd';
import { EtcdClient } from '../../src/saga-log/etcd-client';
import { EtcdKeys } from '../../src/saga-log/etcd-keys';
import { claimSagas } from '../../src/saga-log/etcd-queries';
import type { SagaEvent, StartedEvent } from '../../src/runtime/journal';
import type { TestEtcd } from '../helpers/etcd';
import { startEtcd } from '../helpers/etcd';
import { until } from '../helpers/etcd-replicas';
import { countByStatus } from '../helpers/saga-log-counts';
import type { TcpProxy } from '../helpers/tcp-proxy';
import { tcpProxy } from '../helpers/tcp-proxy';

/**
 * The etcd saga log's leases and fencing, two instances on one real 3-member cluster: what the
 * contract suite (saga-log-contract.test.ts) cannot say with one instance.
 */
jest.setTimeout(60_000);

let etcd: TestEtcd;
let prefixes = 0;
beforeAll(async () => {
  etcd = await startEtcd();
});
afterAll(async () => {
  await etcd?.stop();
});

function open(
  prefix: string,
  instanceId: string,
  leaseTtlMs = 10_000,
  monotonicMs?: () => number,
): Promise<EtcdSagaLog> {
  const store = parseStoreUrl(etcd.storeUrl(prefix), process.cwd());
  if (!('kind' in store) || store.kind !== 'etcd') throw new Error('not an etcd store');
  return EtcdSagaLog.open(
    { store, instanceId, leaseTtlMs, ...(monotonicMs ? { monotonicMs } : {}) },
    systemClock,
  );
}
const fresh = (): string => `/store-etcd-${++prefixes}/`;

/** A log whose client talks to the members in this order (the first until it fails). */
function openOn(endpoints: readonly string[], prefix: string, instanceId: string): Promise<EtcdSagaLog> {
  const store = parseStoreUrl(
    `etcd://${endpoints.join(',')}?prefix=${encodeURIComponent(prefix)}`,
    process.cwd(),
  );
  if (!('kind' in store) || store.kind !== 'etcd') throw new Error('not an etcd store');
  return EtcdSagaLog.open({ store, instanceId, leaseTtlMs: 10_000 }, systemClock);
}

/** A proxy in front of one running member, and a log that reaches that member through it first. */
async function throughProxy(prefix: string): Promise<{ proxy: TcpProxy; log: EtcdSagaLog }> {
  const [first, ...others] = etcd.members.filter((m) => m.running()).map((m) => m.endpoint);
  if (!first) throw new Error('no member running');
  const proxy = await tcpProxy(first);
  return { proxy, log: await openOn([proxy.endpoint, ...others], prefix, 'a') };
}

const started: StartedEvent = {
  type: 'saga.started',
  definition: 'book-trip',
  version: 'v1',
  request: { method: 'POST', path: '/trips', query: {}, headers: {}, body: { guest: 'Ada' } },
};
const dispatched = (step: string): SagaEvent => ({
  type: 'call.dispatched',
  step,
  kind: 'action',
  attempt: 1,
  replay: false,
});

it('shares one journal between instances: what one writes, the other reads, lists and counts', async () => {
  const prefix = fresh();
  const [a, b] = await Promise.all([open(prefix, 'a'), open(prefix, 'b')]);
  try {
    await a.append('s1', started);
    await Promise.all(['hotel', 'flight', 'car'].map((s) => a.append('s1', dispatched(s))));
    await a.append('s1', { type: 'saga.finished', status: 'succeeded' });
    expect((await b.history('s1')).map((r) => r.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(await b.summary('s1')).toMatchObject({ status: 'succeeded', definition: 'book-trip' });
    expect((await countByStatus(b)).succeeded).toBe(1);
    expect((await countByStatus(b)).running).toBe(0);
    expect(await b.list({ status: 'succeeded' })).toHaveLength(1);
    expect(await b.list({ definition: 'other' })).toHaveLength(0);
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});

it("lets another instance claim a saga only once the owner's lease lapsed, and fences the old owner", async () => {
  const prefix = fresh();
  const a = await open(prefix, 'a', 2000);
  const b = await open(prefix, 'b', 2000);
  try {
    await a.append('s1', started);
    expect(await b.claimUnfinished()).toEqual([]);
    expect(await a.renewLeases(['s1'])).toEqual([]);
    expect(await b.claimUnfinished()).toEqual([]);
    // a stops renewing (dead, paused, cut off): once etcd expires its lease, b claims the saga.
    await until(
      'b claims s1',
      async () => {
        await b.renewLeases([]);
        return b.claimUnfinished();
      },
      (ids) => ids.length > 0,
    ).then((ids) => expect(ids).toEqual(['s1']));
    await expect(a.append('s1', dispatched('hotel'))).rejects.toMatchObject({
      code: 'SAGAMESH_ERR_LEASE_LOST',
    });
    expect(await a.renewLeases(['s1'])).toEqual(['s1']);
    // b continues the same journal; a's new lease owns only what it starts now.
    expect((await b.append('s1', dispatched('hotel'))).seq).toBe(2);
    await expect(a.append('s1', dispatched('car'))).rejects.toMatchObject({
      code: 'SAGAMESH_ERR_LEASE_LOST',
    });
    expect((await a.append('s2', started)).seq).toBe(1);
    expect(await b.claimUnfinished()).toEqual([]);
    // Once b has finished the saga it has no owner at all: a, still running it, records nothing.
    await b.finish('s1', { type: 'saga.finished', status: 'compensated' });
    await expect(a.append('s1', dispatched('flight'))).rejects.toMatchObject({
      code: 'SAGAMESH_ERR_LEASE_LOST',
    });
    expect((await b.history('s1')).map((r) => r.seq)).toEqual([1, 2, 3]);
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});

it('refuses a commit whose answer comes back after the lease may have lapsed (a pause in between)', async () => {
  let skew = 0;
  const a = await open(fresh(), 'a', 10_000, () => performance.now() + skew);
  try {
    await a.append('s1', started);
    skew = 60_000;
    await expect(a.append('s1', dispatched('hotel'))).rejects.toMatchObject({
      code: 'SAGAMESH_ERR_LEASE_LOST',
    });
    // The lease it could not vouch for is given up: the saga is free to be claimed (here by a
    // itself, under its new lease), and a's next renewal reports what ran under the old one lost.
    skew = 0;
    expect(await a.renewLeases(['s1'])).toEqual(['s1']);
    expect(await a.claimUnfinished()).toEqual(['s1']);
    expect((await a.append('s1', dispatched('car'))).seq).toBe(3);
  } finally {
    await a.close();
  }
});

it('frees the sagas of an instance that stops gracefully at once (its lease is revoked)', async () => {
  const prefix = fresh();
  const a = await open(prefix, 'a', 60_000);
  const b = await open(prefix, 'b', 60_000);
  try {
    await a.append('s1', started);
    expect(await b.claimUnfinished()).toEqual([]);
    await a.close();
    expect(await b.claimUnfinished()).toEqual(['s1']);
  } finally {
    await b.close();
  }
});

it("re-drives a stuck saga on an operator's retry, and prunes finished sagas with their keys", async () => {
  const log = await open(fresh(), 'a');
  try {
    const key = { definition: 'book-trip', key: 'k1', requestHash: 'h1', expiredBefore: 0 };
    await log.start('s1', started, key);
    await log.finish(
      's1',
      { type: 'saga.finished', status: 'stuck' },
      { status: 500, headers: {}, body: '{}' },
    );
    // An operator's retry: the finished saga is claimed again, and runs to its end.
    await log.append('s1', { type: 'saga.recovered', reason: 'retry', by: 'a' });
    await log.append('s1', dispatched('hotel'));
    await log.finish('s1', { type: 'saga.finished', status: 'compensated' });
    expect(await log.summary('s1')).toMatchObject({ status: 'compensated' });
    expect(await countByStatus(log)).toMatchObject({ stuck: 0, compensated: 1 });

    await log.start('s2', started, { ...key, key: 'k2' });
    expect(await log.prune({ sagasFinishedBefore: Date.now() + 1, keysCreatedBefore: 0 })).toEqual({
      sagas: 1,
      keys: 1,
    });
    expect(await log.history('s1')).toEqual([]);
    expect(await log.summary('s2')).toMatchObject({ status: 'running' });
    expect(await log.prune({ sagasFinishedBefore: 0, keysCreatedBefore: Date.now() + 1 })).toEqual({
      sagas: 0,
      keys: 1,
    });
    expect(await log.start('s3', started, key)).toMatchObject({ started: { sagaId: 's3' } });
  } finally {
    await log.close();
  }
});

// A member that dies under a write either never got it or committed it and lost the answer; the
// client cannot tell which. Either way the record is written once, through another member.
it('writes a record through another member when the one it was sent to never got it', async () => {
  const { proxy, log } = await throughProxy(fresh());
  try {
    await log.append('s1', started);
    proxy.holdRequests();
    const write = log.append('s1', dispatched('hotel'));
    await until(
      'the write on its way',
      () => proxy.held(),
      (n) => n > 0,
    );
    proxy.cut();
    await expect(write).resolves.toMatchObject({ seq: 2 });
    await log.append('s1', dispatched('flight'));
    expect((await log.history('s1')).map((r) => r.seq)).toEqual([1, 2, 3]);
  } finally {
    await log.close();
    await proxy.close();
  }
});

it('reads again through another member when the one it asked drops the connection', async () => {
  const [first, ...others] = etcd.members.filter((m) => m.running()).map((m) => m.endpoint);
  if (!first) throw new Error('no member running');
  const proxy = await tcpProxy(first);
  const client = new EtcdClient({ endpoints: [proxy.endpoint, ...others], callTimeoutMs: 5000 });
  try {
    // A Txn of ranges only (the log reads several keys at once this way) is a read.
    const reads = { compare: [], success: [{ request_range: { key: 'a' } }], failure: [] };
    await client.txn(reads);
    proxy.holdAnswers();
    const read = client.txn(reads);
    await until(
      'the read on its way',
      () => proxy.held(),
      (n) => n > 0,
    );
    proxy.cut();
    await expect(read).resolves.toMatchObject({ succeeded: true });
  } finally {
    client.close();
    await proxy.close();
  }
});

it.each([
  ['a start with its Idempotency-Key', 1],
  ['an append', 2],
  ['the end with its answer', 2],
])('takes a record as written when its member committed it and lost the answer: %s', async (what, seq) => {
  const prefix = fresh();
  const { proxy, log } = await throughProxy(prefix);
  const reader = await open(prefix, 'reader');
  const key = { definition: 'book-trip', key: 'k1', requestHash: 'h1', expiredBefore: 0 };
  const answer = { status: 201, headers: {}, body: '{"ok":true}' };
  try {
    if (seq > 1) await log.start('s1', started, key);
    proxy.holdAnswers();
    const write =
      what === 'an append'
        ? log.append('s1', dispatched('hotel'))
        : what === 'the end with its answer'
          ? log.finish('s1', { type: 'saga.finished', status: 'succeeded' }, answer)
          : log.start('s1', started, key);
    await until(
      'the record committed',
      () => reader.history('s1'),
      (h) => h.length === seq,
    );
    proxy.cut();
    await expect(write).resolves.toMatchObject(seq === 1 ? { started: { seq: 1 } } : { seq });
    const history = await reader.history('s1');
    expect(history.map((r) => r.seq)).toEqual(seq === 1 ? [1] : [1, 2]);
    if (what === 'an append') {
      await log.append('s1', dispatched('flight'));
      expect((await reader.history('s1')).map((r) => r.seq)).toEqual([1, 2, 3]);
    }
    if (what === 'the end with its answer') {
      expect(await reader.summary('s1')).toMatchObject({ status: 'succeeded' });
      // The key answers with the stored answer: a client's retry gets it.
      expect(await reader.start('s2', started, key)).toMatchObject({ held: { sagaId: 's1', answer } });
    }
  } finally {
    await log.close();
    await reader.close();
    await proxy.close();
  }
});

it('claims a saga whose claim committed on a member that lost the answer (it is not left to a lease that lives on)', async () => {
  const prefix = fresh();
  const owner = await open(prefix, 'owner');
  await owner.start('s1', started);
  await owner.close(); // a graceful stop revokes its lease: s1 is nobody's
  const [first, ...others] = etcd.members.filter((m) => m.running()).map((m) => m.endpoint);
  if (!first) throw new Error('no member running');
  const proxy = await tcpProxy(first);
  const client = new EtcdClient({ endpoints: [proxy.endpoint, ...others], callTimeoutMs: 5000 });
  const reader = new EtcdClient({ endpoints: others, callTimeoutMs: 5000 });
  const keys = new EtcdKeys(prefix);
  try {
    const lease = await client.leaseGrant(10);
    proxy.holdAnswers();
    const claim = claimSagas(client, keys, lease.id, ['s1']);
    await until(
      'the claim committed',
      () => reader.range({ key: keys.owner('s1') }),
      (r) => r.kvs.length > 0,
    );
    proxy.cut();
    // The owner key is on this lease: the saga is this instance's to run, not nobody's until it dies.
    await expect(claim).resolves.toEqual(['s1']);
  } finally {
    client.close();
    reader.close();
    await proxy.close();
  }
});

it('keeps writing while a member is down (a majority is left)', async () => {
  const log = await open(fresh(), 'a');
  try {
    await log.append('s1', started);
    const leader = await etcd.leader();
    const follower = etcd.members.find((m) => m !== leader && m.running());
    if (!follower) throw new Error('no follower');
    await etcd.kill(follower);
    for (let i = 0; i < 20; i++) await log.append('s1', dispatched(`step-${i}`));
    await log.ping();
    expect((await log.history('s1')).map((r) => r.seq)).toEqual(Array.from({ length: 21 }, (_, i) => i + 1));
  } finally {
    await log.close();
  }
});
