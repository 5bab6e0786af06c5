import path from 'node:path';
import type { Stack } from '../../demo/stack';
import { freePort, spawnSagamesh, startStack } from '../../demo/stack';
import type { SagaView } from '../../src/admin/timeline';
import { request, waitFor } from '../helpers/http';
import { trip } from '../helpers/trip-client';

/**
 * The admin API over real HTTP, on sagas that ran through a real Envoy: auth, list, inspect,
 * abort and retry.
 */
jest.setTimeout(60_000);

const TOKEN = 'test-admin-token-0123456789';
const AUTH = { authorization: `Bearer ${TOKEN}` };
let stack: Stack;

beforeAll(async () => {
  stack = await startStack({
    ports: 'free',
    sagasDir: path.join(__dirname, '..', 'fixtures', 'sagas', 'operate'),
    env: { SAGAMESH_ADMIN_TOKEN: TOKEN, SAGAMESH_LOG_LEVEL: 'info' },
  });
});

afterAll(async () => {
  await stack?.stop();
});

beforeEach(() => {
  for (const p of Object.values(stack.participants)) p.reset();
});

const book = (over: Record<string, unknown> = {}) =>
  request(`${stack.ingressUrl}/trips`, { method: 'POST', body: trip(over) });

const admin = (pathname: string, init: Parameters<typeof request>[1] = {}) =>
  request(`${stack.adminUrl}${pathname}`, init);

describe('health', () => {
  it('is alive and ready once started', async () => {
    expect(await admin('/healthz')).toMatchObject({ status: 200, body: { status: 'ok' } });
    const ready = await admin('/readyz');
    expect(ready.status).toBe(200);
    expect(ready.body).toEqual({
      ready: true,
      checks: { definitions: 'loaded', draining: false, store: 'ok' },
      reasons: [],
    });
  });

  it('answers unknown paths and wrong methods with coded errors', async () => {
    expect(await admin('/nope')).toMatchObject({
      status: 404,
      body: { error: { code: 'SAGAMESH_ERR_ADMIN_NOT_FOUND' } },
    });
    expect(await admin('/sagas/x/abort')).toMatchObject({
      status: 405,
      body: { error: { code: 'SAGAMESH_ERR_ADMIN_METHOD_NOT_ALLOWED' } },
    });
    expect(await admin('/sagas?status=lost&limit=0')).toMatchObject({
      status: 400,
      body: {
        error: {
          code: 'SAGAMESH_ERR_ADMIN_BAD_REQUEST',
          details: [expect.stringContaining('status=lost'), expect.stringContaining('limit=0')],
        },
      },
    });
  });
});

describe('auth', () => {
  it('refuses mutating endpoints without the bearer token, or with a wrong one', async () => {
    const attempts: Record<string, string>[] = [
      {},
      { authorization: 'Bearer wrong-token-0123456789' },
      { authorization: TOKEN },
    ];
    for (const headers of attempts) {
      const res = await admin('/sagas/some-id/abort', { method: 'POST', headers });
      expect(res.status).toBe(401);
      expect(res.body.error.code).toBe('SAGAMESH_ERR_ADMIN_UNAUTHORIZED');
    }
    // with the right token the request gets through to the saga lookup
    const res = await admin('/sagas/some-id/abort', { method: 'POST', headers: AUTH });
    expect(res.body.error.code).toBe('SAGAMESH_ERR_SAGA_NOT_FOUND');
  });

  it('refuses mutating endpoints when no token is configured (not open)', async () => {
    const port = await freePort();
    const { process: sagamesh, ready } = spawnSagamesh({
      SAGAMESH_GRPC_ADDR: '127.0.0.1:0',
      SAGAMESH_ADMIN_ADDR: `127.0.0.1:${port}`,
      SAGAMESH_STORE: 'memory',
    });
    try {
      await ready;
      for (const action of ['abort', 'retry']) {
        const res = await request(`http://127.0.0.1:${port}/sagas/any/${action}`, {
          method: 'POST',
          headers: AUTH,
        });
        expect(res.status).toBe(403);
        expect(res.body.error.code).toBe('SAGAMESH_ERR_ADMIN_TOKEN_NOT_CONFIGURED');
      }
      // reading stays open on the (loopback) admin address
      expect((await request(`http://127.0.0.1:${port}/sagas`)).status).toBe(200);
    } finally {
      await sagamesh.stop();
    }
  });
});

describe('list and inspect', () => {
  it('lists sagas filtered by status, definition and time, newest first', async () => {
    const before = Date.now();
    const ok = await book();
    const failed = await book({ car: { class: 'compact', fault: 'fail' } });
    expect([ok.status, failed.status]).toEqual([201, 409]);
    const okId = ok.headers.get('x-sagamesh-saga-id');
    const failedId = failed.body.sagaId as string;

    const compensated = await admin('/sagas?status=compensated&definition=book-trip');
    expect(compensated.status).toBe(200);
    const ids = (compensated.body.sagas as { sagaId: string }[]).map((s) => s.sagaId);
    expect(ids).toContain(failedId);
    expect(ids).not.toContain(okId);

    const recent = await admin(`/sagas?since=${before}&limit=10`);
    expect((recent.body.sagas as { sagaId: string }[]).map((s) => s.sagaId)).toEqual([failedId, okId]);
    expect(recent.body.sagas[0]).toMatchObject({ definition: 'book-trip', status: 'compensated' });
    expect((await admin(`/sagas?since=${Date.now() + 3_600_000}`)).body.sagas).toEqual([]);
    expect((await admin('/sagas?limit=1')).body.sagas).toHaveLength(1);
    expect((await admin('/sagas?definition=no-such-saga')).body.sagas).toEqual([]);
  });

  it('pages past a full page with the cursor in `next`, and refuses a cursor it did not give', async () => {
    const before = Date.now();
    const answers = [];
    for (let i = 0; i < 3; i++) answers.push(await book());
    const booked = answers.map((a) => a.headers.get('x-sagamesh-saga-id')).reverse();
    const first = await admin(`/sagas?since=${before}&limit=2`);
    expect((first.body.sagas as { sagaId: string }[]).map((s) => s.sagaId)).toEqual(booked.slice(0, 2));
    expect(first.body.next).toEqual(expect.any(String));
    const second = await admin(`/sagas?since=${before}&limit=2&cursor=${first.body.next as string}`);
    expect((second.body.sagas as { sagaId: string }[]).map((s) => s.sagaId)).toEqual(booked.slice(2));
    // Not a full page: nothing after it.
    expect(second.body).not.toHaveProperty('next');
    expect(await admin('/sagas?cursor=not-a-cursor')).toMatchObject({
      status: 400,
      body: {
        error: { code: 'SAGAMESH_ERR_ADMIN_BAD_REQUEST', details: [expect.stringContaining('cursor=')] },
      },
    });
  });

  it('inspects one saga: every transition with timestamps and every call with its status', async () => {
    const failed = await book({ car: { class: 'compact', fault: 'fail' } });
    const sagaId = failed.body.sagaId as string;
    const res = await admin(`/sagas/${sagaId}`);
    expect(res.status).toBe(200);
    const { saga, history } = res.body as { saga: SagaView; history: { type: string; at: unknown }[] };
    expect(saga).toMatchObject({
      sagaId,
      definition: 'book-trip',
      version: expect.stringMatching(/^[0-9a-f]{12}$/),
      status: 'compensated',
      failedStep: 'car',
      finished: true,
      request: { method: 'POST', path: '/trips' },
      error: { code: 'SAGAMESH_ERR_STEP_REJECTED' },
    });
    const types = history.map((r) => r.type);
    expect(types[0]).toBe('saga.started');
    expect(types).toContain('saga.compensating');
    expect(types[types.length - 1]).toBe('saga.finished');
    for (const r of history) expect(typeof r.at).toBe('number');

    const bar = (step: string, lane: string) => saga.bars.filter((b) => b.step === step && b.lane === lane);
    expect(bar('hotel', 'action')).toHaveLength(1);
    // When the car's refusal overtakes the hotel's answer, the hotel is in doubt: it is replayed
    // with its idempotency key (a replay bar in the compensation lane) before it is undone.
    const hotelUndo = bar('hotel', 'compensation');
    expect(hotelUndo.filter((b) => b.kind === 'compensation')).toEqual([
      expect.objectContaining({ outcome: 'success', httpStatus: 200 }),
    ]);
    expect(hotelUndo.filter((b) => b.kind === 'action').every((b) => b.replay)).toBe(true);
    expect(bar('car', 'action')).toEqual([expect.objectContaining({ outcome: 'rejected', httpStatus: 409 })]);
    for (const b of saga.bars) expect(b.end).toBeGreaterThanOrEqual(b.start);

    expect(await admin('/sagas/00000000-0000-0000-0000-000000000000')).toMatchObject({
      status: 404,
      body: { error: { code: 'SAGAMESH_ERR_SAGA_NOT_FOUND' } },
    });
  });
});

describe('abort', () => {
  it('compensates a running saga and tells the client why', async () => {
    const slow = { fault: 'slow:1500' };
    const answer = book({ hotel: { nights: 1 }, flight: { to: 'LIS', ...slow }, car: { class: 'suv' } });
    const sagaId = await waitFor(async () => {
      const running = await admin('/sagas?status=running&definition=book-trip');
      return running.body.sagas[0]?.sagaId as string | undefined;
    }, 'a running saga');

    const res = await admin(`/sagas/${sagaId}/abort`, {
      method: 'POST',
      headers: AUTH,
      body: { reason: 'customer called' },
    });
    expect(res).toMatchObject({ status: 202, body: { sagaId, status: 'aborting' } });

    // Not a deadline, and not worth retrying: an operator decided (docs/errors.md).
    const client = await answer;
    expect(client.status).toBe(409);
    expect(client.body).toMatchObject({
      sagaId,
      status: 'compensated',
      error: { code: 'SAGAMESH_ERR_SAGA_ABORTED' },
    });
    expect(client.body.error.message).toContain('customer called');
    expect(stack.participants.hotel.bookings().map((b) => b.status)).toEqual(['cancelled']);

    const again = await admin(`/sagas/${sagaId}/abort`, { method: 'POST', headers: AUTH });
    expect(again).toMatchObject({ status: 409, body: { error: { code: 'SAGAMESH_ERR_SAGA_NOT_RUNNING' } } });
  });
});

describe('retry', () => {
  it('re-drives a stuck saga until its compensations succeed', async () => {
    // The hotel refuses to cancel, so the saga ends stuck after the car fails.
    const res = await book({
      hotel: { city: 'Lisbon', nights: 2, fault: 'cancel-fail' },
      car: { class: 'compact', fault: 'fail' },
    });
    // The client hears the documented code, not the car's: nothing is undone for sure.
    expect(res.status).toBe(500);
    expect(res.body).toMatchObject({
      status: 'stuck',
      failedStep: 'car',
      error: {
        code: 'SAGAMESH_ERR_COMPENSATION_EXHAUSTED',
        message: expect.stringContaining('hotel'),
        cause: { code: 'SAGAMESH_ERR_STEP_REJECTED' },
      },
    });
    const sagaId = res.body.sagaId as string;
    expect((await admin(`/sagas/${sagaId}`)).body.saga.status).toBe('stuck');
    // … and the operator's alerting an error line that names it.
    const line = await waitFor(
      async () =>
        Promise.resolve(
          stack.sagamesh.lines().find((l) => l.includes(sagaId) && l.includes('"msg":"saga finished"')),
        ),
      'the stuck saga to be logged',
    );
    expect(JSON.parse(line)).toMatchObject({
      level: 'error',
      code: 'SAGAMESH_ERR_COMPENSATION_EXHAUSTED',
      status: 'stuck',
      stuck_steps: ['hotel'],
    });

    // A compensated saga is not retried.
    const done = await book({ car: { class: 'compact', fault: 'fail' } });
    const notStuck = await admin(`/sagas/${done.body.sagaId}/retry`, { method: 'POST', headers: AUTH });
    expect(notStuck).toMatchObject({ status: 409, body: { error: { code: 'SAGAMESH_ERR_SAGA_NOT_STUCK' } } });

    // The operator fixes the hotel (its fault switch is cleared), then retries.
    stack.participants.hotel.reset();
    const retry = await admin(`/sagas/${sagaId}/retry`, { method: 'POST', headers: AUTH });
    expect(retry).toMatchObject({ status: 202, body: { sagaId, status: 'retrying' } });
    const final = await waitFor(async () => {
      const saga = (await admin(`/sagas/${sagaId}`)).body.saga as SagaView;
      return saga.finished && saga.status !== 'stuck' ? saga : undefined;
    }, 'the retried saga to finish');
    expect(final.status).toBe('compensated');
    expect(final.marks.map((m) => m.label)).toEqual(
      expect.arrayContaining(['stuck', 'recovered', 'compensated']),
    );

    expect(await admin('/sagas/unknown-saga/retry', { method: 'POST', headers: AUTH })).toMatchObject({
      status: 404,
      body: { error: { code: 'SAGAMESH_ERR_SAGA_NOT_FOUND' } },
    });
  });
});
