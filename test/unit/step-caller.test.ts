import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { HttpCaller, StepHttpRequest } from '../../src/engine/http-caller';
import { CallCancellation, CallNetworkError } from '../../src/engine/http-caller';
import { createHttpCaller } from '../../src/participants/step-caller';

/**
 * The HTTP/1.1 step caller against a local server (what Envoy's egress listener is to it): the
 * response body limit holds whether the participant declares a Content-Length or streams chunks.
 */
let server: http.Server;
let caller: HttpCaller;
let answer: (res: http.ServerResponse) => void;

beforeAll(async () => {
  server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => answer(res));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const egressUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  caller = createHttpCaller({ egressUrl, connections: 2, maxResponseBytes: 1000 });
});

afterAll(async () => {
  await caller.close();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

const request = (): StepHttpRequest => ({
  method: 'POST',
  origin: 'http://hotel',
  path: '/bookings',
  headers: { 'idempotency-key': 's1:hotel:action' },
  body: { guest: 'ada' },
  cancellation: new CallCancellation(),
});

async function failure(p: Promise<unknown>): Promise<CallNetworkError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof CallNetworkError) return err;
    throw err;
  }
  throw new Error('the call succeeded');
}

/** `bytes` of JSON-ish text in chunks of 100, without a Content-Length (chunked encoding). */
function chunked(res: http.ServerResponse, bytes: number): void {
  res.writeHead(201, { 'content-type': 'text/plain' });
  for (let sent = 0; sent < bytes; sent += 100) res.write('x'.repeat(Math.min(100, bytes - sent)));
  res.end();
}

test('reads an answer with a Content-Length', async () => {
  answer = (res) => res.writeHead(201, { 'content-type': 'application/json' }).end('{"id":"b1"}');
  await expect(caller.call(request())).resolves.toMatchObject({ status: 201, body: { id: 'b1' } });
});

test('reads a chunked answer within the limit', async () => {
  answer = (res) => chunked(res, 1000);
  const r = await caller.call(request());
  expect(r.status).toBe(201);
  expect(r.body).toBe('x'.repeat(1000));
});

test('refuses a declared body over the limit', async () => {
  answer = (res) => res.writeHead(201, { 'content-length': '2000' }).end('y'.repeat(2000));
  expect((await failure(caller.call(request()))).errno).toBe('ERESPONSETOOLARGE');
});

test('refuses a chunked body once it passes the limit', async () => {
  answer = (res) => chunked(res, 5000);
  const err = await failure(caller.call(request()));
  expect(err.errno).toBe('ERESPONSETOOLARGE');
  // As many bytes as had arrived when the limit was passed (undici may deliver several writes at once).
  expect(err.message).toMatch(/^response body of (\d+) bytes exceeds 1000$/);
  expect(Number(/of (\d+) bytes/.exec(err.message)?.[1])).toBeGreaterThan(1000);
});

test('marks an answer that claims JSON and does not parse as unreadable, keeping its text', async () => {
  answer = (res) => res.writeHead(201, { 'content-type': 'application/json' }).end('{"id":"b1');
  const r = await caller.call(request());
  expect(r).toMatchObject({ status: 201, body: '{"id":"b1' });
  expect(r.unreadable).toMatch(/^the body is not JSON: /);
});

test('marks a JSON answer nested deeper than the limit as unreadable, without parsing it', async () => {
  const deep = `{"id":${'['.repeat(65)}${']'.repeat(65)}}`;
  answer = (res) => res.writeHead(201, { 'content-type': 'application/json' }).end(deep);
  const r = await caller.call(request());
  expect(r).toMatchObject({ status: 201, body: deep, unreadable: 'the body nests more than 64 levels deep' });
  answer = (res) => res.writeHead(201, { 'content-type': 'application/json' }).end('{"id":[[["b1"]]]}');
  expect(await caller.call(request())).toEqual({
    status: 201,
    headers: expect.any(Object) as unknown,
    body: { id: [[['b1']]] },
  });
});

test('gives up a call when it is cancelled while the participant has not answered', async () => {
  let arrived = (): void => undefined;
  const held = new Promise<void>((resolve) => (arrived = resolve));
  answer = () => arrived(); // never answers
  const cancellation = new CallCancellation();
  const call = caller.call({ ...request(), cancellation });
  await held;
  cancellation.cancel();
  const err = await failure(call);
  expect(err.message).toBe('the call was cancelled');
});

test('sends nothing for a call cancelled before it was sent', async () => {
  let served = 0;
  answer = (res) => {
    served++;
    res.writeHead(201).end();
  };
  const cancellation = new CallCancellation();
  cancellation.cancel();
  await failure(caller.call({ ...request(), cancellation }));
  await expect(caller.call(request())).resolves.toMatchObject({ status: 201 });
  expect(served).toBe(1);
});
