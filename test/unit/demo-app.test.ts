import type { App, AppEcho } from '../../demo/app';
import { createApp } from '../../demo/app';

describe('demo trips app', () => {
  let app: App;
  let base: string;

  beforeEach(async () => {
    app = createApp();
    base = `http://127.0.0.1:${await app.listen(0)}`;
  });
  afterEach(async () => {
    await app.close();
  });

  async function send(
    method: string,
    path: string,
    body?: string,
    headers: Record<string, string> = {},
  ): Promise<{ status: number; json: unknown }> {
    const res = await fetch(base + path, { method, headers, ...(body === undefined ? {} : { body }) });
    return { status: res.status, json: await res.json() };
  }

  it('echoes method, path with query, headers and a JSON body', async () => {
    const r = await send('POST', '/trips?x=1', JSON.stringify({ guest: 'ada' }), {
      'content-type': 'application/json',
      'x-sagamesh-saga-id': 's1',
    });
    expect(r.status).toBe(200);
    const echo = r.json as AppEcho;
    expect(echo).toMatchObject({ app: 'trips', method: 'POST', path: '/trips?x=1', body: { guest: 'ada' } });
    expect(echo.headers['x-sagamesh-saga-id']).toBe('s1');
    expect(echo.headers['content-type']).toBe('application/json');
  });

  it('echoes a non-JSON body as text and an empty one as null, for any method', async () => {
    expect(((await send('PUT', '/a/b', 'plain words')).json as AppEcho).body).toBe('plain words');
    const del = await send('DELETE', '/trips/7');
    expect(del.status).toBe(200);
    expect(del.json).toMatchObject({ method: 'DELETE', path: '/trips/7', body: null });
  });

  it('answers 500 app_failed for a top-level fault "fail" only', async () => {
    const r = await send('POST', '/trips', JSON.stringify({ fault: 'fail' }));
    expect(r).toEqual({ status: 500, json: { error: 'app_failed' } });
    const nested = await send('POST', '/trips', JSON.stringify({ car: { fault: 'fail' } }));
    expect(nested.status).toBe(200);
    const unknown = await send('POST', '/trips', JSON.stringify({ fault: 'whatever' }));
    expect(unknown.status).toBe(200);
  });

  it('delays for fault "slow:<ms>", then echoes', async () => {
    const t0 = performance.now();
    const r = await send('POST', '/trips', JSON.stringify({ fault: 'slow:60' }));
    expect(performance.now() - t0).toBeGreaterThanOrEqual(55);
    expect(r.status).toBe(200);
  });

  it('answers /healthz without recording it', async () => {
    expect(await send('GET', '/healthz')).toEqual({ status: 200, json: { ok: true, app: 'trips' } });
    expect(app.calls()).toEqual([]);
  });

  it('records each call with headers, raw body and status; reset clears them', async () => {
    await send('POST', '/trips', '{"fault":"fail"}', { traceparent: 'tp' });
    await send('GET', '/trips/1');
    const calls = app.calls();
    expect(calls).toHaveLength(2);
    expect(calls[0]).toMatchObject({
      seq: 1,
      method: 'POST',
      path: '/trips',
      body: '{"fault":"fail"}',
      status: 500,
    });
    expect(calls[0]?.headers.traceparent).toBe('tp');
    expect(calls[1]).toMatchObject({ seq: 2, method: 'GET', path: '/trips/1', body: '', status: 200 });
    expect(calls[1]?.startedAt).toBeGreaterThanOrEqual(calls[0]?.finishedAt ?? Infinity);
    app.reset();
    expect(app.calls()).toEqual([]);
  });
});
