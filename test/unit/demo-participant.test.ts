import type { Booking, CallRecord, Participant } from '../../demo/participant';
import { createParticipant } from '../../demo/participant';

/** Polls `cond` every 5 ms until true; only for things that cannot be awaited (client aborts). */
async function until(cond: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('demo participant', () => {
  let p: Participant;
  let base: string;
  const lines: string[] = [];

  beforeEach(async () => {
    lines.length = 0;
    p = createParticipant('hotel', { logger: (l) => lines.push(l) });
    const port = await p.listen(0);
    base = `http://127.0.0.1:${port}`;
  });
  afterEach(async () => {
    await p.close();
  });

  async function call(
    method: string,
    path: string,
    opts: { body?: unknown; raw?: string; headers?: Record<string, string> } = {},
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON off the wire; the tests assert its shape
  ): Promise<{ status: number; body: any; headers: Headers }> {
    const init: RequestInit = { method, headers: { ...opts.headers } };
    if (opts.raw !== undefined) init.body = opts.raw;
    else if (opts.body !== undefined) {
      init.body = JSON.stringify(opts.body);
      (init.headers as Record<string, string>)['content-type'] = 'application/json';
    }
    const res = await fetch(base + path, init);
    const text = await res.text();
    return { status: res.status, body: text === '' ? null : JSON.parse(text), headers: res.headers };
  }

  const post = (body: unknown, headers: Record<string, string> = {}) =>
    call('POST', '/bookings', { body, headers });

  it('creates, lists and gets bookings', async () => {
    const created = await post({ guest: 'ada', nights: 2 });
    expect(created.status).toBe(201);
    const b = created.body as Booking;
    expect(b.id).toMatch(/^hotel-[0-9a-f]{16}$/);
    expect(b).toMatchObject({ resource: 'hotel', status: 'booked', request: { guest: 'ada', nights: 2 } });
    expect(Number.isNaN(Date.parse(b.createdAt))).toBe(false);

    const other = await post({ guest: 'bob' });
    expect(other.body.id).not.toBe(b.id);

    const list = await call('GET', '/bookings');
    expect(list.status).toBe(200);
    expect((list.body.bookings as Booking[]).map((x) => x.id)).toEqual([b.id, other.body.id]);

    const got = await call('GET', `/bookings/${b.id}`);
    expect(got.status).toBe(200);
    expect(got.body).toEqual(b);
    expect(p.bookings()).toHaveLength(2);

    expect((await call('GET', '/bookings/hotel-nope')).status).toBe(404);
  });

  it('treats an empty POST body as {}', async () => {
    const r = await call('POST', '/bookings');
    expect(r.status).toBe(201);
    expect(r.body.request).toEqual({});
  });

  it('replays a create with the same idempotency-key without booking again', async () => {
    const h = { 'idempotency-key': 's1:hotel:action' };
    const first = await post({ guest: 'ada' }, h);
    const second = await post({ guest: 'ada' }, h);
    expect(first.status).toBe(201);
    expect(second.status).toBe(200);
    expect(second.body).toEqual(first.body);
    expect(first.body.idempotencyKey).toBe('s1:hotel:action');
    expect(p.bookings()).toHaveLength(1);

    const third = await post({ guest: 'ada' }, { 'idempotency-key': 's2:hotel:action' });
    expect(third.status).toBe(201);
    expect(p.bookings()).toHaveLength(2);
  });

  it('joins a concurrent retry of an in-progress slow create instead of duplicating it', async () => {
    const h = { 'idempotency-key': 'k-slow' };
    const [a, b] = await Promise.all([post({ fault: 'slow:100' }, h), post({ fault: 'slow:100' }, h)]);
    expect([a.status, b.status].sort()).toEqual([200, 201]);
    expect(a.body.id).toBe(b.body.id);
    expect(p.bookings()).toHaveLength(1);
  });

  it('cancels idempotently and 404s unknown ids', async () => {
    const { body: b } = await post({ guest: 'ada' }, { 'idempotency-key': 's1:hotel:action' });
    const c1 = await call('DELETE', `/bookings/${b.id}`, {
      headers: { 'idempotency-key': 's1:hotel:compensation' },
    });
    expect(c1.status).toBe(200);
    expect(c1.body).toMatchObject({ id: b.id, status: 'cancelled' });
    expect(typeof c1.body.cancelledAt).toBe('string');
    const c2 = await call('DELETE', `/bookings/${b.id}`);
    expect(c2.status).toBe(200);
    expect(c2.body).toEqual(c1.body);

    const missing = await call('DELETE', '/bookings/hotel-0000');
    expect(missing.status).toBe(404);
    expect(missing.body).toEqual({ error: 'not_found' });

    // A replayed create after cancel returns the (now cancelled) booking, never a new one.
    const replay = await post({ guest: 'ada' }, { 'idempotency-key': 's1:hotel:action' });
    expect(replay.status).toBe(200);
    expect(replay.body).toMatchObject({ id: b.id, status: 'cancelled' });
    expect(p.bookings()).toHaveLength(1);
    expect(p.calls().find((c) => c.method === 'DELETE')?.idempotencyKey).toBe('s1:hotel:compensation');
  });

  it('rejects malformed JSON, unknown routes and wrong methods', async () => {
    const bad = await call('POST', '/bookings', { raw: '{"guest":' });
    expect(bad.status).toBe(400);
    expect(bad.body).toEqual({ error: 'bad_json' });
    const unknown = await call('GET', '/nowhere');
    expect(unknown.status).toBe(404);
    const wrong = await call('PUT', '/bookings');
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get('allow')).toBe('GET, POST');
    expect(p.bookings()).toHaveLength(0);
  });

  it('fault "fail" answers 409 and books nothing', async () => {
    const r = await post({ fault: 'fail' });
    expect(r.status).toBe(409);
    expect(r.body).toEqual({ error: 'rejected', message: 'hotel unavailable' });
    expect(p.bookings()).toHaveLength(0);
  });

  it('fault "slow:<ms>" delays, then books', async () => {
    const t0 = performance.now();
    const r = await post({ fault: 'slow:80' });
    expect(performance.now() - t0).toBeGreaterThanOrEqual(75);
    expect(r.status).toBe(201);
    expect(p.bookings()).toHaveLength(1);
  });

  it('fault "fail:<ms>" answers 409 after the delay and books nothing', async () => {
    const started = performance.now();
    const r = await post({ fault: 'fail:150' });
    expect(r.status).toBe(409);
    expect(performance.now() - started).toBeGreaterThanOrEqual(140);
    expect(p.bookings()).toHaveLength(0);
  });

  it('fault "slow:<ms>" still books after the client aborted (the in-doubt case)', async () => {
    const ac = new AbortController();
    const req = fetch(`${base}/bookings`, {
      method: 'POST',
      body: JSON.stringify({ guest: 'ada', fault: 'slow:150' }),
      headers: { 'idempotency-key': 's9:hotel:action', 'x-sagamesh-saga-id': 's9' },
      signal: ac.signal,
    });
    await until(() => p.inFlight() === 1);
    ac.abort();
    await expect(req).rejects.toThrow();
    expect(p.bookings()).toHaveLength(0);

    await until(() => p.calls().length === 1);
    expect(p.bookings()).toHaveLength(1);
    expect(p.bookings()[0]).toMatchObject({
      sagaId: 's9',
      idempotencyKey: 's9:hotel:action',
      status: 'booked',
    });
    expect(p.calls()[0]).toMatchObject({ method: 'POST', status: 201, aborted: true });

    // The saga's retry with the same key now learns the id it needs to compensate.
    const retry = await post({ guest: 'ada', fault: 'slow:150' }, { 'idempotency-key': 's9:hotel:action' });
    expect(retry.status).toBe(200);
    expect(retry.body.id).toBe(p.bookings()[0]?.id);
  });

  it('fault "flaky:<n>" answers 503 n times per idempotency-key, then books', async () => {
    const h = { 'idempotency-key': 'k1' };
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await post({ fault: 'flaky:2' }, h)).status);
    expect(statuses).toEqual([503, 503, 201, 200]);
    expect(p.bookings()).toHaveLength(1);

    const r = await post({ fault: 'flaky:1' }, { 'idempotency-key': 'k2' });
    expect(r.status).toBe(503);
    expect(r.body.error).toBe('unavailable');
  });

  it('fault "garbled:<n>" books, but the first n answers for its idempotency-key are not the JSON they claim', async () => {
    const h = { 'idempotency-key': 'k1' };
    const answers: { status: number; type: string | null; text: string }[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${base}/bookings`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...h },
        body: JSON.stringify({ guest: 'ada', fault: 'garbled:2' }),
      });
      answers.push({ status: res.status, type: res.headers.get('content-type'), text: await res.text() });
    }
    expect(answers.map((a) => a.status)).toEqual([201, 200, 200]);
    expect(answers.every((a) => a.type?.startsWith('application/json'))).toBe(true);
    expect(() => JSON.parse(answers[0]?.text ?? '') as unknown).toThrow();
    expect(() => JSON.parse(answers[1]?.text ?? '') as unknown).toThrow();
    // Booked once, at the first create; the third answer is the booking.
    expect(p.bookings()).toHaveLength(1);
    expect(JSON.parse(answers[2]?.text ?? '')).toMatchObject({ id: p.bookings()[0]?.id, status: 'booked' });
  });

  it('fault "cancel-fail" books, but every cancel answers 500', async () => {
    const { status, body: b } = await post({ fault: 'cancel-fail' });
    expect(status).toBe(201);
    for (let i = 0; i < 2; i++) {
      const r = await call('DELETE', `/bookings/${b.id}`);
      expect(r.status).toBe(500);
      expect(r.body.error).toBe('cancel_failed');
    }
    expect(p.bookings()[0]?.status).toBe('booked');
  });

  it('fault "cancel-slow:<ms>" books at once; a DELETE waits, then cancels', async () => {
    const created = await post({ guest: 'ada', fault: 'cancel-slow:120' });
    expect(created.status).toBe(201);
    const t0 = performance.now();
    const pending = call('DELETE', `/bookings/${created.body.id}`);
    await until(() => p.inFlight() === 1);
    expect(p.bookings()[0]?.status).toBe('booked');
    const r = await pending;
    expect(performance.now() - t0).toBeGreaterThanOrEqual(115);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ id: created.body.id, status: 'cancelled' });
    // Once cancelled, a repeated DELETE answers at once with the same booking.
    const t1 = performance.now();
    const again = await call('DELETE', `/bookings/${created.body.id}`);
    expect(performance.now() - t1).toBeLessThan(100);
    expect(again.body).toEqual(r.body);
  });

  it('fault "cancel-slow:<ms>" still cancels after the client aborted, and a concurrent DELETE joins the wait', async () => {
    const { body: b } = await post({ guest: 'ada', fault: 'cancel-slow:300' });
    const headers = { 'idempotency-key': 's7:hotel:compensation' };
    const ac = new AbortController();
    const first = fetch(`${base}/bookings/${b.id}`, { method: 'DELETE', headers, signal: ac.signal });
    await until(() => p.inFlight() === 1);
    ac.abort();
    await expect(first).rejects.toThrow();
    expect(p.bookings()[0]?.status).toBe('booked');

    // The caller's retry arrives while the first cancel still waits (a third of the way in): it
    // joins that wait instead of starting its own, and nothing is cancelled twice.
    await new Promise((r) => setTimeout(r, 100));
    const t0 = performance.now();
    const second = await call('DELETE', `/bookings/${b.id}`, { headers });
    expect(performance.now() - t0).toBeLessThan(260);
    expect(second.status).toBe(200);
    expect(second.body).toMatchObject({ id: b.id, status: 'cancelled' });
    const [booking] = p.bookings();
    expect(booking?.cancelledAt).toBe(second.body.cancelledAt);

    const third = await call('DELETE', `/bookings/${b.id}`, { headers });
    expect(third.body.cancelledAt).toBe(second.body.cancelledAt);
    await until(() => p.calls().length === 4);
    const deletes = p.calls().filter((c) => c.method === 'DELETE');
    expect(deletes.map((c) => [c.status, c.aborted ?? false])).toEqual([
      [200, true],
      [200, false],
      [200, false],
    ]);
    // The joined DELETE ended with the first one, not a full delay after it started.
    expect(Math.abs((deletes[1]?.finishedAt ?? 0) - (deletes[0]?.finishedAt ?? Infinity))).toBeLessThan(20);
    expect(new Set(deletes.map((c) => c.idempotencyKey))).toEqual(new Set(['s7:hotel:compensation']));
  });

  it('abandons a pending cancel-slow DELETE on reset', async () => {
    const { body: b } = await post({ fault: 'cancel-slow:5000' });
    const pending = call('DELETE', `/bookings/${b.id}`);
    await until(() => p.inFlight() === 1);
    const [booking] = p.bookings();
    p.reset();
    const r = await pending;
    expect(r.status).toBe(503);
    expect(booking?.status).toBe('booked');
    expect(booking?.cancelledAt).toBeUndefined();
  });

  it.each([
    ['explode'],
    ['slow:'],
    ['slow:-1'],
    ['flaky:x'],
    [42],
    [''],
    ['slow:99999999'],
    ['cancel-slow:'],
    ['cancel-slow:99999999'],
    ['garbled:'],
    ['garbled:1001'],
  ])('fault %p answers 400 bad_fault', async (fault) => {
    const r = await post({ fault });
    expect(r.status).toBe(400);
    expect(r.body.error).toBe('bad_fault');
    expect(p.bookings()).toHaveLength(0);
  });

  it('records calls with saga headers, in order, and logs one JSON line each', async () => {
    const headers = {
      'x-sagamesh-saga-id': 's1',
      'x-sagamesh-step': 'hotel',
      'x-sagamesh-kind': 'action',
      'idempotency-key': 's1:hotel:action',
      traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
    };
    const { body: b } = await post({ guest: 'ada' }, headers);
    expect(b).toMatchObject({ sagaId: 's1', traceparent: headers.traceparent });
    await call('DELETE', `/bookings/${b.id}`, {
      headers: { ...headers, 'x-sagamesh-kind': 'compensation', 'idempotency-key': 's1:hotel:compensation' },
    });
    await call('GET', '/healthz');

    const viaHttp = await call('GET', '/calls');
    const calls = viaHttp.body.calls as CallRecord[];
    expect(calls).toEqual(p.calls());
    expect(calls).toHaveLength(2); // control routes are not recorded
    expect(calls[0]).toMatchObject({
      seq: 1,
      method: 'POST',
      path: '/bookings',
      status: 201,
      kind: 'action',
      step: 'hotel',
      sagaId: 's1',
      idempotencyKey: 's1:hotel:action',
      traceparent: headers.traceparent,
    });
    expect(calls[1]).toMatchObject({
      method: 'DELETE',
      path: `/bookings/${b.id}`,
      status: 200,
      kind: 'compensation',
    });
    expect(calls[1]?.startedAt).toBeGreaterThanOrEqual(calls[0]?.finishedAt ?? Infinity);
    expect(calls[0]?.finishedAt).toBeGreaterThanOrEqual(calls[0]?.startedAt ?? Infinity);
    expect(calls[0]).toBeDefined();
    expect(calls[0]?.aborted).toBeUndefined();

    const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(parsed.map((l) => [l.method, l.status])).toEqual([
      ['POST', 201],
      ['DELETE', 200],
      ['GET', 200],
      ['GET', 200],
    ]);
    expect(parsed[0]).toMatchObject({ service: 'hotel', sagaId: 's1', step: 'hotel', kind: 'action' });
  });

  it('shows overlapping calls when requests run concurrently', async () => {
    await Promise.all([post({ fault: 'slow:60' }), post({ fault: 'slow:60' })]);
    const [a, b] = p.calls();
    if (!a || !b) throw new Error('two calls expected');
    expect(a.startedAt).toBeLessThan(b.finishedAt);
    expect(b.startedAt).toBeLessThan(a.finishedAt);
  });

  it('POST /reset and reset() clear everything', async () => {
    await post({ guest: 'ada' }, { 'idempotency-key': 'k' });
    expect((await call('POST', '/reset')).status).toBe(200);
    expect(p.bookings()).toEqual([]);
    expect(p.calls()).toEqual([]);
    const again = await post({ guest: 'ada' }, { 'idempotency-key': 'k' });
    expect(again.status).toBe(201); // the key was forgotten too
    expect(p.calls()[0]?.seq).toBe(1);
    p.reset();
    expect(p.bookings()).toEqual([]);
  });

  it('abandons a pending slow booking on reset', async () => {
    const pending = post({ fault: 'slow:5000' });
    await until(() => p.inFlight() === 1);
    p.reset();
    const r = await pending;
    expect(r.status).toBe(503);
    expect(p.bookings()).toEqual([]);
    expect(p.calls()).toEqual([]);
  });

  it('answers /healthz', async () => {
    const r = await call('GET', '/healthz');
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ ok: true, service: 'hotel' });
  });

  it('close() does not wait for a parked slow request', async () => {
    const pending = post({ fault: 'slow:60000' });
    await until(() => p.inFlight() === 1);
    await p.close();
    await expect(pending).rejects.toThrow('fetch failed');
    expect(p.bookings()).toEqual([]);
  });
});
