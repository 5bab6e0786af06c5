import fs from 'node:fs';
import path from 'node:path';
import type { Stack } from '../../demo/stack';
import { startStack } from '../../demo/stack';
import { bigSaga } from '../helpers/big-saga';
import { ConfigMapDir } from '../helpers/configmap';
import { request, waitFor } from '../helpers/http';

/**
 * Saga definitions from a ConfigMap mount, reloaded while sagamesh runs behind a real Envoy: a
 * valid swap takes effect for new sagas only (running ones finish with the version they started
 * with, which the saga log records); an invalid swap is rejected and the last good set stays.
 */
jest.setTimeout(60_000);

const BOOK_TRIP = fs.readFileSync(
  path.join(__dirname, '..', 'fixtures', 'sagas', 'operate', 'book-trip.yaml'),
  'utf8',
);
const V1 = BOOK_TRIP;
// v2 answers 202 instead of 201: a difference a client can see.
const V2 = BOOK_TRIP.replace(/success:\n(\s+)status: 201/, 'success:\n$1status: 202');
const RENT_CAR = `apiVersion: sagamesh.dev/v1alpha1
kind: Saga
metadata: { name: rent-car }
spec:
  match: { method: POST, path: /cars }
  steps:
    - name: car
      action:
        request: { method: POST, url: http://car/bookings, body: { class: compact, guest: '\${request.body.guest}' } }
  response:
    success: { status: 201, body: { car: '\${steps.car.response.body.id}' } }
`;

const cm = new ConfigMapDir();
let stack: Stack;

beforeAll(async () => {
  expect(V2).not.toBe(V1);
  cm.write({ 'book-trip.yaml': V1 });
  stack = await startStack({ ports: 'free', sagasDir: cm.dir, env: { SAGAMESH_RELOAD_DEBOUNCE_MS: '50' } });
});

afterAll(async () => {
  await stack?.stop();
});

const trip = (over: Record<string, unknown> = {}) =>
  request(`${stack.ingressUrl}/trips`, {
    method: 'POST',
    body: { guest: 'Ada', hotel: { nights: 1 }, flight: { to: 'LIS' }, car: { class: 'compact' }, ...over },
  });
const admin = (p: string) => request(`${stack.adminUrl}${p}`);
const versions = async (): Promise<Record<string, string>> => {
  const { body } = await admin('/definitions');
  return Object.fromEntries(
    (body.definitions as { name: string; version: string }[]).map((d) => [d.name, d.version]),
  );
};
const metric = async (name: string, labels: string): Promise<number> => {
  const text = await (await fetch(`${stack.adminUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line ? Number(line.split(' ').pop()) : 0;
};

it('applies a valid ConfigMap swap to new sagas only; running sagas finish with their version', async () => {
  const v1 = (await versions())['book-trip'];
  expect(v1).toMatch(/^[0-9a-f]{12}$/);

  // A saga that is still running when the swap happens.
  const slow = trip({ flight: { to: 'LIS', fault: 'slow:1500' } });
  const slowId = await waitFor(async () => {
    const { body } = await admin('/sagas?status=running');
    return (body.sagas as { sagaId: string }[])[0]?.sagaId;
  }, 'the slow saga to be running');

  cm.write({ 'book-trip.yaml': V2, 'rent-car.yaml': RENT_CAR });
  const now = await waitFor(async () => {
    const v = await versions();
    return v['book-trip'] !== v1 && v['rent-car'] ? v : undefined;
  }, 'the new definitions to be in force');

  const fresh = await trip();
  expect(fresh.status).toBe(202);
  const car = await request(`${stack.ingressUrl}/cars`, { method: 'POST', body: { guest: 'Ada' } });
  expect(car.status).toBe(201);

  const old = await slow;
  expect(old.status).toBe(201);
  expect(old.headers.get('x-sagamesh-saga-id')).toBe(slowId);
  expect((await admin(`/sagas/${slowId}`)).body.saga.version).toBe(v1);
  const freshId = fresh.headers.get('x-sagamesh-saga-id') ?? '';
  expect((await admin(`/sagas/${freshId}`)).body.saga.version).toBe(now['book-trip']);
  // the UI and graph still find the version the old saga ran with
  expect((await admin(`/definitions/book-trip?version=${v1}`)).status).toBe(200);

  expect(await metric('sagamesh_definition_reloads_total', 'result="applied"')).toBeGreaterThanOrEqual(1);
});

it('rejects an invalid swap with coded errors and a metric, and keeps the last good set', async () => {
  const before = await versions();
  const rejectedBefore = await metric('sagamesh_definition_reloads_total', 'result="rejected"');

  cm.write({
    'book-trip.yaml': V2.replace('deadline: 10s', 'deadline: soon'),
    'rent-car.yaml': RENT_CAR.replace('url: http://car/bookings', 'url: "http://${request.body.host}/x"'),
  });
  await waitFor(
    async () =>
      (await metric('sagamesh_definition_reloads_total', 'result="rejected"')) > rejectedBefore
        ? true
        : undefined,
    'the reload to be rejected',
  );
  expect(
    await metric('sagamesh_definition_reload_errors_total', 'code="SAGAMESH_ERR_DEF_SCHEMA"'),
  ).toBeGreaterThanOrEqual(1);
  // The line reaches this process through a pipe, possibly after the metric that counted it.
  const logged = await waitFor(
    () => Promise.resolve(stack.sagamesh.lines().find((l) => l.includes('SAGAMESH_ERR_RELOAD_REJECTED'))),
    'the rejected reload to be logged',
  );
  expect(logged).toMatch(/book-trip\.yaml:\d+:\d+ spec\.deadline SAGAMESH_ERR_DEF_SCHEMA/);

  expect(await versions()).toEqual(before);
  expect((await trip()).status).toBe(202);
  expect((await admin('/readyz')).status).toBe(200);
});

it('refuses an oversized file on reload without parsing it; the last good set stays', async () => {
  const before = await versions();
  const rejectedBefore = await metric('sagamesh_definition_reloads_total', 'result="rejected"');
  // A valid saga but for its size.
  cm.write({ 'book-trip.yaml': V2, 'big.yaml': bigSaga('big', 300 * 1024, 100) });
  await waitFor(
    async () =>
      (await metric('sagamesh_definition_reloads_total', 'result="rejected"')) > rejectedBefore
        ? true
        : undefined,
    'the reload to be rejected',
  );
  const logged = await waitFor(
    () =>
      Promise.resolve(
        [...stack.sagamesh.lines()]
          .reverse()
          .find((l) => l.includes('SAGAMESH_ERR_RELOAD_REJECTED') && l.includes('big.yaml')),
      ),
    'the rejected reload of big.yaml to be logged',
  );
  expect(logged).toMatch(/big\.yaml:1:1 SAGAMESH_ERR_DEF_TOO_LARGE the file holds \d+ bytes/);
  expect(await versions()).toEqual(before);
  expect((await trip()).status).toBe(202);
});

it('answers /healthz while a reload at the size limits is checked and built', async () => {
  const appliedBefore = await metric('sagamesh_definition_reloads_total', 'result="applied"');
  const files: Record<string, string> = { 'book-trip.yaml': V2 };
  // 1 MiB and 2,000 expressions in all, less what book-trip holds.
  for (const n of [1, 2, 3, 4]) files[`big-${n}.yaml`] = bigSaga(`big-${n}`, 250 * 1024, 400);
  const written = Date.now();
  cm.write(files);
  const answeredAt: number[] = [];
  let applied = false;
  const poll = (async () => {
    while (!applied) {
      if ((await admin('/healthz')).status === 200) answeredAt.push(Date.now());
      await new Promise((r) => setImmediate(r));
    }
  })();
  try {
    await waitFor(
      async () =>
        (await metric('sagamesh_definition_reloads_total', 'result="applied"')) > appliedBefore
          ? true
          : undefined,
      'the large set to be applied',
      30_000,
    );
  } finally {
    applied = true;
    await poll;
  }
  // When sagamesh logged the set in force, read from its own log line — this reload's: the line
  // reaches the test through a pipe, possibly after the metric that counted the reload.
  const doneAt = await waitFor(async () => {
    const times = stack.sagamesh
      .lines()
      .filter((l) => l.includes('saga definitions reloaded'))
      .map((l) => Date.parse((JSON.parse(l) as { time?: string }).time ?? ''));
    return Promise.resolve(times.find((t) => t >= written));
  }, 'the log line of this reload');
  // A reload that held the event loop would leave one long silence covering most of the reload;
  // relative to the reload's own length, so a slow or busy machine does not change the verdict.
  const startedAt = written + 50; // SAGAMESH_RELOAD_DEBOUNCE_MS
  let longestWait = 0;
  for (let i = 1; i < answeredAt.length; i++) {
    const [before, after] = [answeredAt[i - 1] ?? 0, answeredAt[i] ?? 0];
    if (before < doneAt && after > startedAt) longestWait = Math.max(longestWait, after - before);
  }
  expect(answeredAt.some((t) => t > doneAt)).toBe(true);
  expect(longestWait).toBeLessThan((doneAt - startedAt) / 2);
  expect(Object.keys(await versions())).toEqual(['big-1', 'big-2', 'big-3', 'big-4', 'book-trip']);
});
