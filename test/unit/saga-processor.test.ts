import pino from 'pino';
import { SimulatedClock } from 'xstate';
import { ERRORS, SagameshError } from '../../src/errors';
import type { HttpHeaders, ProcessingResponse } from '../../src/extproc/messages';
import { SagaProcessor } from '../../src/extproc/saga-processor';
import type { SagaDefinition } from '../../src/definition/definition';
import type { SagaResult, SagaRunner } from '../../src/engine/runner';
import { MemorySagaLog } from '../../src/saga-log/memory';
import type { Observer } from '../../src/engine/observer';
import { NOOP_OBSERVER } from '../../src/engine/observer';
import type { JsonLimits } from '../../src/json-limits';
import { constant, definition, step } from '../helpers/fake-definition';

/** The saga processor's decisions before any saga runs, with the runner and store faked. */
const def: SagaDefinition = { ...definition([step('hotel')]), input: { json: true } };

function processor(
  opts: {
    draining?: boolean;
    start?: SagaRunner['start'];
    inFlight?: () => number;
    maxInFlight?: number;
    observer?: Observer;
    definition?: SagaDefinition;
    bodyLimits?: JsonLimits;
  } = {},
) {
  const log = new MemorySagaLog(new SimulatedClock());
  const runner = {
    get inFlight() {
      return opts.inFlight?.() ?? 0;
    },
    start: opts.start ?? (() => Promise.reject(new Error('not expected'))),
  } as unknown as SagaRunner;
  const make = () =>
    new SagaProcessor(
      {
        definitions: () => ({
          match: (m: string, p: string) =>
            m === 'POST' && p === '/test' ? (opts.definition ?? def) : undefined,
          ambiguous: (m: string, p: string) => (m === 'POST' && p === '/test;x' ? def : undefined),
          ownedHeaders: new Set(['x-hotel-booking']),
        }),
        runner,
        answerBudgetMs: 1000,
        sagaLog: log,
        clock: new SimulatedClock(),
        idempotencyRetentionMs: 60_000,
        isDraining: () => opts.draining ?? false,
        maxBodyBytes: 1024,
        ...(opts.maxInFlight !== undefined ? { maxInFlight: opts.maxInFlight } : {}),
        ...(opts.observer ? { observer: opts.observer } : {}),
        ...(opts.bodyLimits ? { bodyLimits: opts.bodyLimits } : {}),
      },
      { logger: pino({ level: 'silent' }) },
    );
  return { make, log };
}

const headers = (path: string, extra: Record<string, string> = {}, end = false): HttpHeaders => ({
  headers: {
    headers: Object.entries({ ':method': 'POST', ':path': path, ...extra }).map(([key, v]) => ({
      key,
      raw_value: Buffer.from(v),
    })),
  },
  end_of_stream: end,
});

const bodyOf = (r: ProcessingResponse): { error?: { code: string } } =>
  JSON.parse(r.immediate_response?.body?.toString() ?? '{}') as { error?: { code: string } };
const header = (r: ProcessingResponse, name: string) =>
  r.immediate_response?.headers?.set_headers?.find((h) => h.header.key === name)?.header.raw_value.toString();

describe('SagaProcessor', () => {
  it('switches the rest of the stream off for a request that matches no saga (every phase named)', async () => {
    const r = await processor()
      .make()
      .requestHeaders(headers('/other', {}, true));
    expect(r).toEqual({
      request_headers: { response: { status: 'CONTINUE' } },
      mode_override: {
        request_header_mode: 'SEND',
        request_body_mode: 'NONE',
        response_header_mode: 'SKIP',
        response_body_mode: 'NONE',
        request_trailer_mode: 'SKIP',
        response_trailer_mode: 'SKIP',
      },
    });
  });

  it.each([
    ['of unknown length', {}, 'SEND'],
    ['over 16 KiB', { 'content-length': '70000' }, 'SEND'],
    ['of a content-length that is not a number', { 'content-length': '1e3' }, 'SEND'],
    ['of 16 KiB or less', { 'content-length': '16384' }, 'SKIP'],
  ])(
    'keeps the response headers on for a request that matches no saga with a body %s (Envoy stalled on an overflow)',
    async (_, extra, responseHeaders) => {
      const r = await processor().make().requestHeaders(headers('/other', extra));
      expect(r.request_headers?.response.status).toBe('CONTINUE');
      expect(r.mode_override).toEqual({
        request_header_mode: 'SEND',
        request_body_mode: 'NONE',
        response_header_mode: responseHeaders,
        response_body_mode: 'NONE',
        request_trailer_mode: 'SKIP',
        response_trailer_mode: 'SKIP',
      });
    },
  );

  it('asks for the buffered body of a matching request', async () => {
    const r = await processor().make().requestHeaders(headers('/test?x=1'));
    expect(r.request_headers?.response.status).toBe('CONTINUE');
    expect(r.mode_override).toMatchObject({ request_body_mode: 'BUFFERED', response_header_mode: 'SKIP' });
  });

  it('answers 503 DRAINING with Retry-After while shutting down', async () => {
    const r = await processor({ draining: true }).make().requestHeaders(headers('/test'));
    expect(r.immediate_response?.status.code).toBe(503);
    expect(bodyOf(r).error?.code).toBe('SAGAMESH_ERR_DRAINING');
    expect(header(r, 'retry-after')).toBe('1');
  });

  it('sheds load: past SAGAMESH_MAX_IN_FLIGHT a saga request gets 503 OVERLOADED with Retry-After', async () => {
    let inFlight = 3;
    const start = jest.fn();
    const rejected: string[] = [];
    const observer = { ...NOOP_OBSERVER, sagaRejected: (_d: string, code: string) => rejected.push(code) };
    const { make } = processor({ start, inFlight: () => inFlight, maxInFlight: 3, observer });
    const r = await make().requestHeaders(headers('/test', { 'idempotency-key': 'k1' }));
    expect(r.immediate_response?.status.code).toBe(503);
    expect(bodyOf(r).error?.code).toBe('SAGAMESH_ERR_OVERLOADED');
    expect(header(r, 'retry-after')).toBe('1');
    expect(rejected).toEqual(['SAGAMESH_ERR_OVERLOADED']);
    // Nothing recorded, nothing started; even the Idempotency-Key (reserved with the start) stays free.
    expect(start).not.toHaveBeenCalled();
    // A request that matches no saga still passes, and below the bound sagas start again.
    expect((await make().requestHeaders(headers('/other'))).request_headers?.response.status).toBe(
      'CONTINUE',
    );
    inFlight = 2;
    const ok = await make().requestHeaders(headers('/test'));
    expect(ok.immediate_response).toBeUndefined();
    expect(ok.request_headers?.response.status).toBe('CONTINUE');
  });

  it('refuses an ambiguous spelling of a saga path with 400 PATH_AMBIGUOUS, counted, before anything starts', async () => {
    const start = jest.fn();
    const rejected: string[] = [];
    const observer = {
      ...NOOP_OBSERVER,
      sagaRejected: (d: string, code: string) => rejected.push(`${d} ${code}`),
    };
    const r = await processor({ start, observer }).make().requestHeaders(headers('/test;x'));
    expect(r.immediate_response?.status.code).toBe(400);
    expect(bodyOf(r).error?.code).toBe('SAGAMESH_ERR_PATH_AMBIGUOUS');
    expect(rejected).toEqual(['test-saga SAGAMESH_ERR_PATH_AMBIGUOUS']);
    expect(start).not.toHaveBeenCalled();
  });

  it('refuses any path longer than 4096 characters (query excluded) with 414 PATH_TOO_LONG', async () => {
    const p = processor().make;
    const long = await p().requestHeaders(headers(`/x${'%2F'.repeat(1365)}`));
    expect(long.immediate_response?.status.code).toBe(414);
    expect(bodyOf(long).error?.code).toBe('SAGAMESH_ERR_PATH_TOO_LONG');
    // 4096 characters and a long query are still read.
    const longest = await p().requestHeaders(headers(`/${'a'.repeat(4095)}?q=${'b'.repeat(10_000)}`));
    expect(longest.immediate_response).toBeUndefined();
    expect(longest.request_headers?.response.status).toBe('CONTINUE');
  });

  it('answers 400 BODY_NOT_JSON without starting anything', async () => {
    const start = jest.fn();
    const p = processor({ start }).make();
    await p.requestHeaders(headers('/test'));
    const r = await p.requestBody({ body: Buffer.from('{"a":'), end_of_stream: true });
    expect(r.immediate_response?.status.code).toBe(400);
    expect(bodyOf(r).error?.code).toBe('SAGAMESH_ERR_BODY_NOT_JSON');
    expect(start).not.toHaveBeenCalled();
  });

  it('answers 413 BODY_TOO_LARGE for a body over SAGAMESH_MAX_BODY_BYTES, before parsing or recording it', async () => {
    const start = jest.fn(() => Promise.reject(new SagameshError(ERRORS.STORE_UNAVAILABLE, 'not here')));
    const { make } = processor({ start: start as unknown as SagaRunner['start'] });
    const p = make();
    await p.requestHeaders(headers('/test', { 'idempotency-key': 'k1' }));
    const big = Buffer.from(JSON.stringify({ pad: 'x'.repeat(1024) }));
    const r = await p.requestBody({ body: big, end_of_stream: true });
    expect(r.immediate_response?.status.code).toBe(413);
    expect(bodyOf(r).error?.code).toBe('SAGAMESH_ERR_BODY_TOO_LARGE');
    // Nothing started, so the Idempotency-Key (reserved with the start) was not reserved either.
    expect(start).not.toHaveBeenCalled();
    // A body at the limit is taken.
    const q = make();
    await q.requestHeaders(headers('/test'));
    const atLimit = await q.requestBody({ body: Buffer.from(`"${'x'.repeat(1022)}"`), end_of_stream: true });
    expect(bodyOf(atLimit).error?.code).toBe('SAGAMESH_ERR_STORE_UNAVAILABLE');
    expect(start).toHaveBeenCalledTimes(1);
  });
  it.each([
    ['nests too deep', `{"a":${'['.repeat(65)}${']'.repeat(65)}}`, 'nests more than 64 levels deep'],
    ['holds too many values', JSON.stringify({ a: Array(100).fill(1) }), 'more than 100 values'],
  ])(
    'answers 400 BODY_TOO_COMPLEX for a body that %s, before anything is recorded',
    async (_, body, detail) => {
      const start = jest.fn();
      const { make } = processor({ start, bodyLimits: { maxDepth: 64, maxValues: 100 } });
      const p = make();
      await p.requestHeaders(headers('/test', { 'idempotency-key': 'k1' }));
      const r = await p.requestBody({ body: Buffer.from(body), end_of_stream: true });
      expect(r.immediate_response?.status.code).toBe(400);
      expect(bodyOf(r).error).toMatchObject({ code: 'SAGAMESH_ERR_BODY_TOO_COMPLEX' });
      expect(JSON.stringify(bodyOf(r).error)).toContain(detail);
      // Nothing started, so the Idempotency-Key was not reserved either.
      expect(start).not.toHaveBeenCalled();
    },
  );

  it('reserves the Idempotency-Key with the start, so a saga that could not start leaves it free', async () => {
    const start = jest.fn(() => Promise.reject(new SagameshError(ERRORS.STORE_UNAVAILABLE, 'disk full')));
    const { make } = processor({ start: start as unknown as SagaRunner['start'] });
    for (let attempt = 1; attempt <= 2; attempt++) {
      const p = make();
      await p.requestHeaders(headers('/test', { 'idempotency-key': 'k1' }));
      const r = await p.requestBody({ body: Buffer.from('{}'), end_of_stream: true });
      expect(r.immediate_response?.status.code).toBe(503);
      expect(bodyOf(r).error?.code).toBe('SAGAMESH_ERR_STORE_UNAVAILABLE');
    }
    // Both attempts asked to start, each with the key: the first one's failure left nothing behind.
    expect(start).toHaveBeenCalledTimes(2);
    for (const call of start.mock.calls as unknown as [unknown, unknown, { key?: { key: string } }][])
      expect(call[2].key).toMatchObject({ definition: def.name, key: 'k1' });
  });
});

describe('SagaProcessor: headers sagamesh owns', () => {
  const forged = {
    'x-sagamesh-saga-id': 'F',
    'X-Sagamesh-Step': 'F',
    'x-hotel-booking': 'F',
    'x-ok': 'kept',
  };
  const removed = (r: ProcessingResponse) => r.request_headers?.response.header_mutation?.remove_headers;

  it('removes them from a request that matches no saga, in the one answer it gets', async () => {
    const r = await processor()
      .make()
      .requestHeaders(headers('/other', { ...forged, 'content-length': '2' }));
    expect(removed(r)).toEqual(['x-sagamesh-saga-id', 'x-sagamesh-step', 'x-hotel-booking']);
    expect(r.mode_override).toMatchObject({ request_body_mode: 'NONE', response_header_mode: 'SKIP' });
  });

  it('removes them from a saga request before its body is sent', async () => {
    const r = await processor().make().requestHeaders(headers('/test', forged));
    expect(removed(r)).toEqual(['x-sagamesh-saga-id', 'x-sagamesh-step', 'x-hotel-booking']);
    expect(r.mode_override).toMatchObject({ request_body_mode: 'BUFFERED' });
  });

  it('removes a pivot header the saga leaves out, when a bodiless pivot request continues upstream', async () => {
    const pivot: SagaDefinition = definition([step('hotel')], {
      respond: 'upstream',
      upstream: { headers: { 'x-hotel-booking': constant(undefined) } },
    });
    const scope = { request: { method: 'POST', path: '/test', query: {}, headers: {}, body: null } };
    const execution = {
      sagaId: 'saga-1',
      definition: pivot,
      stepsDone: Promise.resolve('pivot'),
      settled: new Promise(() => undefined),
      scope: () => ({ ...scope, steps: {}, saga: { id: 'saga-1', name: pivot.name } }),
    };
    const start = (() => Promise.resolve(execution)) as unknown as SagaRunner['start'];
    const r = await processor({ start, definition: pivot })
      .make()
      .requestHeaders(headers('/test', forged, true));
    const mutation = r.request_headers?.response.header_mutation;
    expect(mutation?.remove_headers).toEqual(['x-sagamesh-saga-id', 'x-sagamesh-step', 'x-hotel-booking']);
    expect(mutation?.set_headers?.map((h) => [h.header.key, h.header.raw_value.toString()])).toEqual([
      ['x-sagamesh-saga-id', 'saga-1'],
      // The upstream is awaited no longer than the saga's deadline (docs/envoy.md).
      ['x-envoy-upstream-rq-timeout-ms', String(def.deadlineMs)],
    ]);
  });
});

describe('SagaProcessor: the pivot upstream`s answer', () => {
  const pivot: SagaDefinition = definition([step('hotel')], { respond: 'upstream' });

  /** A pivot saga at its pivot, whose end the test decides. */
  function atPivot() {
    let settle: (result: SagaResult) => void = () => undefined;
    const responded: number[] = [];
    const execution = {
      sagaId: 'saga-1',
      definition: pivot,
      stepsDone: Promise.resolve('pivot'),
      settled: new Promise<SagaResult>((resolve) => (settle = resolve)),
      scope: () => ({
        request: { method: 'POST', path: '/test', query: {}, headers: {}, body: null },
        steps: {},
        saga: { id: 'saga-1', name: pivot.name },
      }),
      steps: () => [],
      upstreamResponded: (status: number) => responded.push(status),
    };
    const start = (() => Promise.resolve(execution)) as unknown as SagaRunner['start'];
    const result = (status: SagaResult['status']): SagaResult => ({
      sagaId: 'saga-1',
      definition: pivot.name,
      status,
      steps: [],
      scope: execution.scope(),
    });
    return { start, settle, result, responded: () => responded, settleWith: (r: SagaResult) => settle(r) };
  }

  it('passes a 2xx on only once the saga`s end is recorded (chaos: a kill in between gave a 201 for an undone saga)', async () => {
    const saga = atPivot();
    const p = processor({ start: saga.start, definition: pivot }).make();
    await p.requestHeaders(headers('/test', {}, true));
    let answered = false;
    const answer = p.responseHeaders(headers('/test', { ':status': '201' }, false)).then((r) => {
      answered = true;
      return r;
    });
    for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
    expect(saga.responded()).toEqual([201]);
    expect(answered).toBe(false);
    saga.settleWith(saga.result('succeeded'));
    const r = await answer;
    expect(r.response_headers?.response.status).toBe('CONTINUE');
    expect(r.immediate_response).toBeUndefined();
  });

  it('replaces a 2xx that came after the saga gave up on its upstream with the failure answer', async () => {
    const saga = atPivot();
    const p = processor({ start: saga.start, definition: pivot }).make();
    await p.requestHeaders(headers('/test', {}, true));
    saga.settleWith(saga.result('compensated'));
    const r = await p.responseHeaders(headers('/test', { ':status': '200' }, false));
    expect(r.immediate_response?.status.code).toBe(409);
    expect(bodyOf(r)).toMatchObject({ status: 'compensated' });
  });
});
