import type { Stack } from '../../demo/stack';
import { startStack } from '../../demo/stack';
import type { TestEtcd } from '../helpers/etcd';
import { startEtcd } from '../helpers/etcd';
import { etcdRecords, slowTrip, statuses, until } from '../helpers/etcd-replicas';

/**
 * The etcd leader is killed with -9 mid-run, sagas in flight. Raft elects another leader from the
 * two members left; sagamesh's records that were refused meanwhile stop their sagas, which resume
 * from the log once it writes again. Nothing is lost: every saga ends terminal, all-or-nothing at
 * the participants, each effect once, and every client gets (at once, or on a retry with its
 * Idempotency-Key) the answer the log holds.
 */
jest.setTimeout(120_000);

const SAGAS = 24;
const PREFIX = '/leader/';
let etcd: TestEtcd;
let stack: Stack | undefined;

beforeAll(async () => {
  etcd = await startEtcd();
});
afterAll(async () => {
  await stack?.stop();
  await etcd?.stop();
});

it('loses nothing when the etcd leader is killed mid-run', async () => {
  stack = await startStack({
    ports: 'free',
    env: { SAGAMESH_STORE: etcd.storeUrl(PREFIX), SAGAMESH_INSTANCE_ID: 'a', SAGAMESH_LOG_LEVEL: 'info' },
  });
  const { hotel, flight, car } = stack.participants;
  const keyOf = (i: number): string => `leader-${i}`;
  const post = (i: number) =>
    fetch(`${stack?.ingressUrl}/trips`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': keyOf(i) },
      body: slowTrip(i, 600),
    });

  const first = Array.from({ length: SAGAS }, (_, i) => post(i).catch((err: unknown) => err));
  await until(
    'every saga started, flights in flight',
    async () => [
      (await etcdRecords(etcd, PREFIX)).filter((r) => r.type === 'saga.started').length,
      flight.inFlight(),
    ],
    ([started, inFlight]) => started === SAGAS && (inFlight ?? 0) > 0,
  );
  const leader = await etcd.leader();
  await etcd.kill(leader);
  const killedAt = Date.now();
  const answers = await Promise.all(first);
  expect(await etcd.leader()).not.toBe(leader);

  const end = await until(
    'every saga finished in the log',
    async () => statuses(await etcdRecords(etcd, PREFIX)),
    (s) => s.size === SAGAS && [...s.values()].every((x) => x === 'succeeded' || x === 'compensated'),
  );

  for (const p of [hotel, flight, car]) {
    const perSaga = new Map<string, number>();
    for (const booking of p.bookings()) {
      perSaga.set(booking.sagaId ?? '', (perSaga.get(booking.sagaId ?? '') ?? 0) + 1);
      expect(booking.status).toBe(end.get(booking.sagaId ?? '') === 'succeeded' ? 'booked' : 'cancelled');
    }
    expect([...perSaga.values()].every((n) => n === 1)).toBe(true);
    const deletes = p.calls().filter((c) => c.method === 'DELETE');
    expect(new Set(deletes.map((c) => c.idempotencyKey)).size).toBe(deletes.length);
  }
  // A succeeded saga booked everything.
  const succeeded = [...end.values()].filter((s) => s === 'succeeded').length;
  for (const p of [hotel, flight, car])
    expect(p.bookings().filter((x) => x.status === 'booked')).toHaveLength(succeeded);

  // Each client's answer agrees with the log; one that got an error gets the outcome on a retry.
  for (const [i, r] of answers.entries()) {
    const outcome = (status: number): string => (status === 201 ? 'succeeded' : 'compensated');
    if (r instanceof Response && (r.status === 201 || r.status === 409)) {
      expect(end.get(r.headers.get('x-sagamesh-saga-id') ?? '')).toBe(outcome(r.status));
      continue;
    }
    const retry = await until(
      `the answer for ${keyOf(i)}`,
      () => post(i),
      (x) => x.status === 201 || x.status === 409,
    );
    expect(end.get(retry.headers.get('x-sagamesh-saga-id') ?? '')).toBe(outcome(retry.status));
  }
  // Mid-run: the sagas went on writing after the leader was gone.
  expect((await etcdRecords(etcd, PREFIX)).filter((r) => r.at > killedAt).length).toBeGreaterThan(SAGAS);
});
