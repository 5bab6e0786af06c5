import type { ChaosParticipants } from '../chaos/participant';
import { createChaosParticipants } from '../chaos/participant';

/**
 * The chaos participant keeps the conventions a saga relies on even under its planned faults:
 * once per key, refusals that stick, undo before apply that tombstones the key, and a pivot
 * upstream that never commits for a caller that left. Driven over real HTTP, without Envoy.
 */
let participants: ChaosParticipants;
let base: string;

beforeEach(async () => {
  participants = createChaosParticipants();
  await participants.listen({ hotel: 0, flight: 0, car: 0, trips: 0 });
  base = `http://127.0.0.1:${participants.ports().hotel}`;
});
afterEach(() => participants.close());

const headers = (sagaId: string, step: string, kind: string, faults: string[] = []) => ({
  'idempotency-key': `${sagaId}:${step}:${kind}`,
  'x-sagamesh-saga-id': sagaId,
  'x-sagamesh-step': step,
  'x-sagamesh-kind': kind,
  'x-chaos-def': 'd',
  'x-chaos-ref': 'r',
  ...(faults.length ? { 'x-chaos-faults': JSON.stringify(faults) } : {}),
});
const act = (sagaId: string, faults: string[] = [], signal?: AbortSignal) =>
  fetch(`${base}/effects`, {
    method: 'POST',
    headers: headers(sagaId, 's1', 'action', faults),
    body: '{}',
    ...(signal ? { signal } : {}),
  });
const undoByKey = (sagaId: string) =>
  fetch(`${base}/sagas/${sagaId}/steps/s1`, {
    method: 'DELETE',
    headers: headers(sagaId, 's1', 'compensation'),
  });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const types = () =>
  participants
    .events()
    .filter((e) => e.type !== 'call')
    .map((e) => e.type);

it('applies once per key: 201, then the same effect with 200; a refusal sticks to its key', async () => {
  const first = await act('A', ['5xx']);
  expect(first.status).toBe(503);
  const applied = await act('A', ['5xx']);
  expect(applied.status).toBe(201);
  const { id } = (await applied.json()) as { id: string };
  const replay = await act('A', ['5xx', 'refuse']);
  expect(replay.status).toBe(200); // a key once applied never refuses
  expect(((await replay.json()) as { id: string }).id).toBe(id);

  expect((await act('B', ['refuse'])).status).toBe(409);
  expect((await act('B')).status).toBe(409);
  expect(types()).toEqual(['applied']);
});

it('a slow action applies after its caller gave up, unless its key was undone first', async () => {
  // The caller gives up after 50 ms; the participant goes on.
  await expect(act('A', ['slow:200'], AbortSignal.timeout(50))).rejects.toThrow();
  expect(participants.pending()).toBe(1);
  await sleep(250);
  expect(types()).toEqual(['applied']);

  await expect(act('B', ['slow:200'], AbortSignal.timeout(50))).rejects.toThrow();
  expect((await undoByKey('B')).status).toBe(404); // nothing applied yet: the key is tombstoned
  await sleep(250);
  expect(types()).toEqual(['applied', 'tombstoned', 'suppressed']);
  expect((await act('B')).status).toBe(409); // a late replay cannot resurrect it
  expect(participants.pending()).toBe(0);
});

it('drops the connection after applying, answers garbage after applying, and undoes once', async () => {
  await expect(act('A', ['drop'])).rejects.toThrow();
  const garbage = await act('B', ['garbage']);
  expect(garbage.status).toBe(201);
  await expect(garbage.json()).rejects.toThrow();
  const replay = await act('B');
  const { id } = (await replay.json()) as { id: string };
  const undo = (faults: string[] = []) =>
    fetch(`${base}/effects/${id}`, { method: 'DELETE', headers: headers('B', 's1', 'compensation', faults) });
  expect((await undo(['5xx'])).status).toBe(503);
  expect((await undo()).status).toBe(200);
  expect((await undo()).status).toBe(200);
  expect(types()).toEqual(['applied', 'applied', 'undone']);
});

it('the pivot upstream commits once per request, and not for a caller that left', async () => {
  const trips = `http://127.0.0.1:${participants.ports().trips}`;
  const pivot = (sagaId: string, upstream: string, signal?: AbortSignal) =>
    fetch(`${trips}/chaos/1`, {
      method: 'POST',
      headers: { 'x-sagamesh-saga-id': sagaId, 'content-type': 'application/json' },
      body: JSON.stringify({ upstream }),
      ...(signal ? { signal } : {}),
    });
  expect((await pivot('A', 'commit')).status).toBe(201);
  expect((await pivot('B', 'refuse')).status).toBe(409);
  expect((await pivot('C', 'fail')).status).toBe(500);
  await expect(pivot('D', 'slow:300', AbortSignal.timeout(50))).rejects.toThrow();
  await sleep(400);
  expect(
    participants
      .events()
      .filter((e) => e.type === 'committed')
      .map((e) => e.sagaId),
  ).toEqual(['A']);
});
