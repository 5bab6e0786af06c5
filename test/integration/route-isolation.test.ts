import http from 'node:http';
import YAML from 'yaml';
import type { EnvoyProcess } from '../../demo/envoy';
import { renderEnvoyConfig, startEnvoy } from '../../demo/envoy';
import type { Stack } from '../../demo/stack';
import { freePort, startStack } from '../../demo/stack';

/**
 * A pivot route (`respond: upstream`, the demo's POST /itineraries) cannot be bypassed: every
 * spelling of its path either runs the saga or is refused, and headers sagamesh owns never reach
 * the upstream from a client — through envoy/envoy.yaml, and through an Envoy that normalises
 * nothing (an operator's config sagamesh cannot rely on). What the upstream (`trips`) received is
 * read from its own record of calls.
 */
jest.setTimeout(60_000);

let stack: Stack;
/** The same sagamesh behind an Envoy without normalize_path, merge_slashes or an escaped-slash action. */
let bare: { envoy: EnvoyProcess; port: number };

/** envoy/envoy.yaml with the ingress's path handling taken out. */
function bareConfig(ports: Stack['ports']): string {
  const config = YAML.parse(renderEnvoyConfig(ports)) as {
    static_resources: {
      listeners: { name: string; filter_chains: { filters: { typed_config: object }[] }[] }[];
    };
  };
  const ingress = config.static_resources.listeners.find((l) => l.name === 'ingress');
  const hcm = ingress?.filter_chains[0]?.filters[0]?.typed_config as Record<string, unknown> | undefined;
  if (!hcm) throw new Error('envoy/envoy.yaml has no ingress connection manager');
  for (const key of ['normalize_path', 'merge_slashes', 'path_with_escaped_slashes_action']) delete hcm[key];
  return YAML.stringify(config, { lineWidth: 0 });
}

beforeAll(async () => {
  stack = await startStack({ ports: 'free', env: { SAGAMESH_STORE: 'memory' } });
  const ports = {
    ...stack.ports,
    ingress: await freePort(),
    egress: await freePort(),
    admin: await freePort(),
  };
  bare = {
    envoy: await startEnvoy({ configYaml: bareConfig(ports), adminPort: ports.admin }),
    port: ports.ingress,
  };
});

afterAll(async () => {
  await bare?.envoy.stop();
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

/** sagamesh refused the request: nothing was called, nothing reached the upstream. */
function expectRefused(reply: Reply): void {
  expect({ status: reply.status, code: reply.body?.error?.code }).toEqual({
    status: 400,
    code: 'SAGAMESH_ERR_PATH_AMBIGUOUS',
  });
  expect(participantCalls()).toBe(0);
  expect(stack.app.calls()).toHaveLength(0);
}

describe('spellings of a pivot route through envoy/envoy.yaml', () => {
  it.each(['/itineraries/', '/ITINERARIES', '/Itineraries/', '//itineraries', '/itinerari%65s'])(
    '%s runs the saga',
    async (path) => {
      expectSagaRan(await send(stack.ports.ingress, 'POST', path, FORGED, itinerary));
    },
  );

  it.each(['/itineraries;x', '/itineraries%20', '/itineraries;/', '/itineraries.'])(
    '%s is refused with a coded 400',
    async (path) => {
      expectRefused(await send(stack.ports.ingress, 'POST', path, FORGED, itinerary));
    },
  );

  it.each(['/itineraries%2F', '/itineraries%2f', '/itineraries%5C'])(
    '%s is redirected by Envoy to its unescaped path, which runs the saga',
    async (path) => {
      const reply = await send(stack.ports.ingress, 'POST', path, FORGED, itinerary);
      expect(reply.status).toBe(307);
      expect(participantCalls()).toBe(0);
      expect(stack.app.calls()).toHaveLength(0);
      const location = reply.headers.location ?? '';
      expect(new URL(location, stack.ingressUrl).pathname).toBe('/itineraries/');
      expectSagaRan(await send(stack.ports.ingress, 'POST', location, FORGED, itinerary));
    },
  );

  it('an escaped separator cannot carry a saga path past the route that opts out of ext_proc', async () => {
    // /static/ goes to `trips` without sagamesh; unescaped and normalised this is /itineraries.
    const reply = await send(stack.ports.ingress, 'POST', '/static/..%2Fitineraries', FORGED, itinerary);
    expect({ status: reply.status, location: reply.headers.location }).toEqual({
      status: 307,
      location: expect.stringMatching(/\/itineraries$/),
    });
    expect(stack.app.calls()).toHaveLength(0);
  });
});

describe('spellings of a pivot route through an Envoy that normalises nothing', () => {
  it.each(['/itineraries/', '/ITINERARIES', '//itineraries', '/itinerari%65s'])(
    '%s runs the saga',
    async (path) => {
      expectSagaRan(await send(bare.port, 'POST', path, FORGED, itinerary));
    },
  );

  it.each([
    '/itineraries;x',
    '/itineraries%2F',
    '/itineraries%2f',
    '/itineraries%5C',
    '/itineraries%20',
    '/itineraries%09',
    '/itineraries%252F',
    '/x/../itineraries',
    '/x/%2E%2E/itineraries',
    '/itineraries/.',
    '/itineraries.',
    '/itinerarie%C5%BF',
  ])('%s is refused with a coded 400', async (path) => {
    expectRefused(await send(bare.port, 'POST', path, FORGED, itinerary));
  });
});

describe('a path too long to read', () => {
  it('is refused with a coded 414, saga route or not, through either Envoy', async () => {
    for (const port of [stack.ports.ingress, bare.port]) {
      for (const path of [`/itineraries;${'x'.repeat(5000)}`, `/elsewhere/${'a'.repeat(5000)}`]) {
        const reply = await send(port, 'POST', path, FORGED, itinerary);
        expect({ status: reply.status, code: reply.body?.error?.code }).toEqual({
          status: 414,
          code: 'SAGAMESH_ERR_PATH_TOO_LONG',
        });
      }
    }
    expect(participantCalls()).toBe(0);
    expect(stack.app.calls()).toHaveLength(0);
  });
});

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
