import type { SagameshProcess, Stack } from '../../demo/stack';
import { freePort, spawnSagamesh, startStack } from '../../demo/stack';
import type { TestEtcd } from '../helpers/etcd';
import { startEtcd } from '../helpers/etcd';
import type { RecordingProxy } from '../helpers/etcd-replicas';
import { etcdRecords, recordingProxy, slowTrip, statuses, until } from '../helpers/etcd-replicas';

/**
 * Fencing. Instance A (behind Envoy) is paused with SIGSTOP mid-saga, past its lease (the stand-in
 * for a partition: A is cut off, alive, and believes it still owns its sagas). B takes the sagas
 * over and finishes them. Then A is resumed with SIGCONT: it abandons those sagas (its renewal finds
 * the lease gone, or an append is refused with LEASE_LOST), the log gains no record, and A sends
 * nothing more — its egress goes through a recording proxy, which sees no request after the resume.
 */
jest.setTimeout(120_000);

const SAGAS = 4;
const PREFIX = '/pause/';
let etcd: TestEtcd;
let stack: Stack | undefined;
let b: SagameshProcess | undefined;
let proxy: RecordingProxy | undefined;

beforeAll(async () => {
  etcd = await startEtcd();
});
afterAll(async () => {
  if (stack) process.kill(stack.sagamesh.pid, 'SIGCONT');
  await b?.stop();
  await stack?.stop();
  await proxy?.close();
  await etcd?.stop();
});

it('A, paused past its lease and resumed, abandons the sagas B took: no record and no request from it after the resume', async () => {
  const common = {
    SAGAMESH_STORE: etcd.storeUrl(PREFIX),
    SAGAMESH_LEASE_TTL_MS: '2000',
    SAGAMESH_LOG_LEVEL: 'info',
  };
  proxy = await recordingProxy(await freePort());
  stack = await startStack({
    ports: 'free',
    env: { ...common, SAGAMESH_INSTANCE_ID: 'a', SAGAMESH_EGRESS_URL: proxy.url },
  });
  proxy.target = stack.egressUrl;
  const spawned = spawnSagamesh({
    ...common,
    SAGAMESH_INSTANCE_ID: 'b',
    SAGAMESH_GRPC_ADDR: `127.0.0.1:${await freePort()}`,
    SAGAMESH_ADMIN_ADDR: `127.0.0.1:${await freePort()}`,
    SAGAMESH_EGRESS_URL: stack.egressUrl,
  });
  b = spawned.process;
  await spawned.ready;
  const { flight } = stack.participants;
  const a = stack.sagamesh;

  const requests = Array.from({ length: SAGAS }, (_, i) =>
    fetch(`${stack?.ingressUrl}/trips`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: slowTrip(i, 2500),
    }).catch((err: unknown) => err),
  );
  await until(
    'hotel and car outcomes in the log',
    async () =>
      (await etcdRecords(etcd, PREFIX)).filter(
        (r) => r.type === 'call.completed' && r.kind === 'action' && (r.step === 'hotel' || r.step === 'car'),
      ).length,
    (n) => n === 2 * SAGAS,
  );
  await until(
    'flights in flight',
    () => flight.inFlight(),
    (n) => n === SAGAS,
  );
  process.kill(a.pid, 'SIGSTOP');

  // B takes every saga over (A's lease lapses while A is stopped) and finishes it.
  const end = await until(
    'every saga finished by B',
    async () => statuses(await etcdRecords(etcd, PREFIX)),
    (s) => s.size === SAGAS && [...s.values()].every((x) => x === 'succeeded' || x === 'compensated'),
  );
  const before = await etcdRecords(etcd, PREFIX);
  const takenOver = before.filter(
    (r) => r.type === 'saga.recovered' && r.reason === 'takeover' && r.by === 'b',
  );
  expect(new Set(takenOver.map((r) => r.sagaId))).toEqual(new Set(end.keys()));
  const sentBefore = proxy.sent().length;
  const resumedAt = Date.now();
  process.kill(a.pid, 'SIGCONT');

  // A wakes up: it learns that its lease lapsed, or has an append refused (LEASE_LOST), whichever
  // comes first, and abandons every saga it was running (store-etcd.test.ts refuses appends alone).
  await until(
    'A abandons every saga',
    () =>
      new Set(
        a
          .lines()
          .filter((l) => l.includes('saga abandoned'))
          .map((l) => (JSON.parse(l) as { saga_id?: string }).saga_id),
      ).size,
    (n) => n === SAGAS,
  );
  // Nothing reached the log after the resume, and A sent no request at all.
  expect(await etcdRecords(etcd, PREFIX)).toEqual(before);
  expect(
    proxy
      .sent()
      .slice(sentBefore)
      .filter((s) => s.at >= resumedAt),
  ).toEqual([]);
  // A's clients got no success: the sagas' answers are B's, in the log.
  for (const r of await Promise.all(requests)) {
    if (r instanceof Response) expect(r.status).not.toBe(201);
  }
});
