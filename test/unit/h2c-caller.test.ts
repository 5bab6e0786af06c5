import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { Http2Server, IncomingHttpHeaders, ServerHttp2Session, ServerHttp2Stream } from 'node:http2';
import { createH2cCaller, UNPROCESSED_STREAM } from '../../src/participants/h2c-caller';
import type { HttpCaller, StepHttpRequest } from '../../src/engine/http-caller';
import { CallCancellation, CallNetworkError } from '../../src/engine/http-caller';
import { classifyNetworkError } from '../../src/engine/outcome';

/**
 * The h2c step caller against a local node:http2 cleartext server (what Envoy's egress listener
 * is to it): answers, aborts, the body limit, and — what compensation depends on — which failures
 * prove the call never reached the participant.
 */
type Handler = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, body: string) => void;

let server: Http2Server;
let egressUrl: string;
let handler: Handler;
let caller: HttpCaller;
const serverStreams: ServerHttp2Stream[] = [];
const sessions = new Set<ServerHttp2Session>();

beforeAll(async () => {
  server = http2.createServer();
  server.on('session', (session) => sessions.add(session));
  server.on('stream', (stream, headers) => {
    serverStreams.push(stream);
    stream.on('error', () => undefined); // a reset stream errors on this side too
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => handler(stream, headers, Buffer.concat(chunks).toString('utf8')));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  egressUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  for (const session of sessions) session.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

beforeEach(() => {
  serverStreams.length = 0;
  caller = createH2cCaller({ egressUrl, sessions: 2, maxResponseBytes: 1000 });
});

afterEach(async () => {
  await caller.close();
});

function request(overrides: Partial<StepHttpRequest> = {}): StepHttpRequest {
  return {
    method: 'POST',
    origin: 'http://hotel',
    path: '/bookings?x=1',
    headers: { 'x-sagamesh-step': 'hotel', 'idempotency-key': 's1:hotel:action', host: 'evil' },
    body: { guest: 'ada' },
    cancellation: new CallCancellation(),
    ...overrides,
  };
}

function json(stream: ServerHttp2Stream, status: number, body: unknown): void {
  stream.respond({ ':status': status, 'content-type': 'application/json' });
  stream.end(JSON.stringify(body));
}

async function failure(promise: Promise<unknown>): Promise<CallNetworkError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CallNetworkError);
  return err as CallNetworkError;
}

test('sends :authority from the origin, the headers and a JSON body; returns status, headers, parsed body', async () => {
  let seen: { headers: IncomingHttpHeaders; body: string } | undefined;
  handler = (stream, headers, body) => {
    seen = { headers, body };
    stream.respond({ ':status': 201, 'content-type': 'application/json', 'x-id': 'b1' });
    stream.end(JSON.stringify({ id: 'b1' }));
  };
  const res = await caller.call(request());
  expect(res).toEqual({
    status: 201,
    headers: expect.objectContaining({ 'content-type': 'application/json', 'x-id': 'b1' }) as unknown,
    body: { id: 'b1' },
  });
  expect(seen?.headers).toMatchObject({
    ':method': 'POST',
    ':authority': 'hotel',
    ':path': '/bookings?x=1',
    'content-type': 'application/json',
    'x-sagamesh-step': 'hotel',
    'idempotency-key': 's1:hotel:action',
  });
  expect(seen?.headers['host']).toBeUndefined();
  expect(JSON.parse(seen?.body ?? '')).toEqual({ guest: 'ada' });
});

test('a non-2xx answer is a response, not an error; no body is sent without one', async () => {
  let body: string | undefined;
  handler = (stream, _h, b) => {
    body = b;
    stream.respond({ ':status': 503 });
    stream.end('busy');
  };
  const res = await caller.call(request({ method: 'DELETE', body: undefined }));
  expect(res.status).toBe(503);
  expect(res.body).toBe('busy');
  expect(body).toBe('');
});

test('many calls at once share the sessions, spread over them', async () => {
  const used = new Set<unknown>();
  handler = (stream) => {
    used.add(stream.session);
    json(stream, 200, { ok: true });
  };
  const answers = await Promise.all(Array.from({ length: 50 }, () => caller.call(request())));
  expect(answers.every((a) => a.status === 200)).toBe(true);
  expect(used.size).toBe(2);
});

test('a cancelled call (a step timeout) rejects and resets the stream with CANCEL', async () => {
  handler = () => undefined; // never answers
  const cancellation = new CallCancellation();
  const pending = caller.call(request({ cancellation }));
  await new Promise((r) => setTimeout(r, 50));
  const serverStream = serverStreams[0];
  const closed = new Promise<number>((resolve) =>
    serverStream?.on('close', () => resolve(serverStream.rstCode)),
  );
  cancellation.cancel();
  await expect(pending).rejects.toThrow('the call was cancelled');
  expect(await closed).toBe(http2.constants.NGHTTP2_CANCEL);
});

test('a response body over the limit is refused, declared or streamed', async () => {
  handler = (stream) => {
    stream.respond({ ':status': 200, 'content-length': '5000' });
    stream.end('x'.repeat(5000));
  };
  expect((await failure(caller.call(request()))).errno).toBe('ERESPONSETOOLARGE');
  handler = (stream) => {
    stream.respond({ ':status': 200 });
    stream.end('x'.repeat(5000));
  };
  expect((await failure(caller.call(request()))).errno).toBe('ERESPONSETOOLARGE');
});

describe('never sent or maybe applied', () => {
  const applied = (err: CallNetworkError): string =>
    classifyNetworkError(err.errno, err.message, 's').applied;

  test('connection refused: never sent', async () => {
    const probe = http2.createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const refused = createH2cCaller({ egressUrl: `http://127.0.0.1:${port}` });
    const err = await failure(refused.call(request()));
    await refused.close();
    expect(err.errno).toBe('ECONNREFUSED');
    expect(applied(err)).toBe('no');
  });

  test('REFUSED_STREAM: never processed', async () => {
    handler = (stream) => stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
    const err = await failure(caller.call(request()));
    expect(err.errno).toBe(UNPROCESSED_STREAM);
    expect(applied(err)).toBe('no');
  });

  test('GOAWAY with a last-stream-id below the stream: never processed; streams below it finish; the next call reconnects', async () => {
    const single = createH2cCaller({ egressUrl, sessions: 1 });
    let held: ServerHttp2Stream | undefined;
    handler = (stream, headers) => {
      if (headers[':path'] === '/held') {
        held = stream;
        return;
      }
      // The egress going away: it processed up to the held stream, not this one.
      stream.session?.goaway(http2.constants.NGHTTP2_NO_ERROR, held?.id ?? 1);
      if (held) json(held, 200, { held: true });
    };
    const first = single.call(request({ path: '/held' }));
    while (held === undefined) await new Promise((r) => setTimeout(r, 5));
    const err = await failure(single.call(request({ path: '/second' })));
    expect(err.errno).toBe(UNPROCESSED_STREAM);
    expect(err.message).toContain('GOAWAY');
    expect(applied(err)).toBe('no');
    expect((await first).body).toEqual({ held: true });

    handler = (stream) => json(stream, 200, { again: true });
    expect((await single.call(request())).body).toEqual({ again: true });
    await single.close();
  });

  test('a reset after the request reached the server: maybe applied', async () => {
    handler = (stream) => stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    const err = await failure(caller.call(request()));
    expect(err.errno).not.toBe(UNPROCESSED_STREAM);
    expect(applied(err)).toBe('maybe');
  });

  test('the connection lost mid-call: maybe applied', async () => {
    handler = (stream) => stream.session?.destroy();
    const err = await failure(caller.call(request()));
    expect(applied(err)).toBe('maybe');
  });
});
