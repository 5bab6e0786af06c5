import http from 'node:http';
import type { Stack } from '../../demo/stack';
import { startStack } from '../../demo/stack';

/**
 * A pivot route (`respond: upstream`, the demo's POST /itineraries) cannot be bypassed: headers
 * sagamesh owns never reach the upstream from a client. What the upstream (`trips`) received is
 * read from its own record of calls.
 */
jest.setTimeout(60_000);

let stack: Stack;

beforeAll(async () => {
  stack = await startStack({ ports: 'free', env: { SAGAMESH_STORE: 'memory' } });
});

afterAll(async () => {
  await stack?.stop();
});

beforeEach(() => {
  for (const p of Object.values(stack.participants)) p.reset();
  stack.app.reset();
});

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- assertions walk arbitrary JSON
  body: any;
}

/** One request with the path exactly as given (fetch would normalise it first). */
function send(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: unknown,
): Promise<Reply> {
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        headers: {
          connection: 'close',
          ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}),
          ...headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          let parsed: unknown = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            // not JSON: keep the text
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: parsed });
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

const itinerary = { guest: 'Ada', hotel: { city: 'Porto', nights: 1 }, flight: { from: 'BER', to: 'OPO' } };
/** What a client might send to make the upstream believe a saga ran. */
const FORGED = {
  'x-sagamesh-saga-id': 'FORGED',
  'x-sagamesh-step': 'FORGED',
  'x-hotel-booking': 'FORGED',
  'x-flight-booking': 'FORGED',
};

const participantCalls = () => Object.values(stack.participants).reduce((n, p) => n + p.calls().length, 0);

/** The saga ran and the upstream got sagamesh's headers, never the client's. */
function expectSagaRan(reply: Reply): void {
  expect(reply.status).toBe(200);
  const sagaId = reply.headers['x-sagamesh-saga-id'];
  expect(sagaId).toMatch(/^[0-9a-f-]{36}$/);
  const [hotel] = stack.participants.hotel.bookings();
  expect(hotel?.status).toBe('booked');
  const [call] = stack.app.calls();
  expect(call?.headers['x-sagamesh-saga-id']).toBe(sagaId);
  expect(call?.headers['x-hotel-booking']).toBe(hotel?.id);
  expect(call?.headers['x-flight-booking']).toBe(stack.participants.flight.bookings()[0]?.id);
  expect(call?.headers['x-sagamesh-step']).toBeUndefined();
}

describe('headers sagamesh owns never reach the upstream from a client', () => {
  it('on a saga request, the upstream gets only what the saga set', async () => {
    expectSagaRan(await send(stack.ports.ingress, 'POST', '/itineraries', FORGED, itinerary));
  });

  it.each([
    ['PUT', '/trips/7'],
    ['GET', '/itineraries'],
    ['POST', '/elsewhere'],
  ])(
    'on a request that runs no saga (%s %s), they are removed and the rest is kept',
    async (method, path) => {
      const reply = await send(
        stack.ports.ingress,
        method,
        path,
        { ...FORGED, 'x-custom': 'kept' },
        { a: 1 },
      );
      expect(reply.status).toBe(200);
      const [call] = stack.app.calls();
      expect(call?.path).toBe(path);
      expect(call?.headers['x-custom']).toBe('kept');
      for (const name of Object.keys(FORGED)) expect(call?.headers[name]).toBeUndefined();
      expect(participantCalls()).toBe(0);
    },
  );
});
