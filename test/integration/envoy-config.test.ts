/**
 * envoy/envoy.yaml against the real Envoy binary: every config validates, renderEnvoyConfig puts
 * ports where they belong, startEnvoy starts and stops, and the ingress behaviours operators rely
 * on (413 over the buffer limit, fail closed, /static/ opt-out, egress routing by Host) hold.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import YAML from 'yaml';
import type { EnvoyPorts, EnvoyProcess } from '../../demo/envoy';
import {
  DEFAULT_ENVOY_PORTS,
  ENVOY_CONFIG_PATH,
  renderEnvoyConfig,
  startEnvoy,
  validateEnvoyConfig,
} from '../../demo/envoy';
import { ERRORS } from '../../src/errors';

jest.setTimeout(60_000);

const ENVOY_DIR = path.dirname(ENVOY_CONFIG_PATH);

/** Every *.yaml under envoy/, relative to envoy/. */
const envoyConfigFiles = fs
  .readdirSync(ENVOY_DIR, { recursive: true, encoding: 'utf8' })
  .filter((f) => /\.ya?ml$/.test(f))
  .sort();

/** n distinct free loopback ports (all held open until every one is allocated). */
async function freePorts(n: number): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const server = net.createServer();
      servers.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', resolve);
      });
    }
    return servers.map((s) => (s.address() as net.AddressInfo).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  }
}

async function freeEnvoyPorts(): Promise<EnvoyPorts> {
  const [ingress, egress, admin, extProc, hotel, flight, car, trips] = (await freePorts(8)) as [
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  return { ingress, egress, admin, extProc, hotel, flight, car, trips };
}

/** The parts of an Envoy bootstrap these tests read. */
interface Addressed {
  address: { socket_address: { address: string; port_value: number } };
}
interface Listener extends Addressed {
  name: string;
}
interface Cluster {
  name: string;
  load_assignment: { endpoints: { lb_endpoints: { endpoint: Addressed }[] }[] };
}
interface Bootstrap {
  admin: Addressed;
  static_resources: { listeners: Listener[]; clusters: Cluster[] };
}

function named<T extends { name: string }>(list: T[], name: string): T {
  const found = list.find((x) => x.name === name);
  if (!found) throw new Error(`${name} not found`);
  return found;
}

/** Every endpoint port of a cluster. */
function clusterPorts(config: Bootstrap, name: string): number[] {
  return named(config.static_resources.clusters, name).load_assignment.endpoints.flatMap((locality) =>
    locality.lb_endpoints.map((lb) => lb.endpoint.address.socket_address.port_value),
  );
}

function listenerPort(config: Bootstrap, name: string): number {
  return named(config.static_resources.listeners, name).address.socket_address.port_value;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** All `path`s of file access loggers anywhere in the config. */
function accessLogPaths(node: unknown): string[] {
  if (Array.isArray(node)) return node.flatMap(accessLogPaths);
  if (typeof node !== 'object' || node === null) return [];
  const obj = node as Record<string, unknown>;
  const own = String(obj['@type']).endsWith('.FileAccessLog') ? [String(obj['path'])] : [];
  return [...own, ...Object.values(obj).flatMap(accessLogPaths)];
}

/** A loopback HTTP server that answers 200 "<name>" and counts requests. */
async function countingServer(
  port: number,
  name: string,
): Promise<{ count: () => number; close: () => Promise<void> }> {
  let count = 0;
  const server = http.createServer((req, res) => {
    count++;
    req.resume();
    req.on('end', () => res.end(name));
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    count: () => count,
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

interface Reply {
  status: number;
  body: string;
}

/**
 * One HTTP/1.1 request. Envoy may answer (413) and close while the body is still being written:
 * a write error after the response has arrived is expected, not a failure.
 */
function send(
  port: number,
  opts: { method?: string; path: string; host?: string; body?: Buffer },
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    let answered = false;
    const headers: http.OutgoingHttpHeaders = { connection: 'close' };
    if (opts.host !== undefined) headers.host = opts.host;
    if (opts.body) headers['content-length'] = opts.body.length;
    const req = http.request(
      { host: '127.0.0.1', port, method: opts.method ?? 'GET', path: opts.path, headers },
      (res) => {
        answered = true;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
        res.on('error', () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }),
        );
      },
    );
    req.on('error', (err) => {
      if (!answered) reject(err);
    });
    req.end(opts.body);
  });
}

interface ProcessingRequest {
  request?: string;
  request_headers?: { headers?: { headers?: { key: string; raw_value?: Uint8Array }[] } };
}

/** google.protobuf.Struct as proto-loader encodes it: the well-known types keep camelCase names. */
function struct(fields: Record<string, string>): object {
  return {
    fields: Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, { stringValue: v }])),
  };
}

/**
 * Stand-in for sagamesh on the ext_proc port — just enough of the protocol to exercise Envoy.
 * Answers every message with CONTINUE; on request headers it also returns dynamic metadata (the
 * `sagamesh` namespace, plus an `other` one Envoy must drop) and, for paths under /nosaga, the
 * mode_override sagamesh sends for requests that match no saga. Records the message kinds seen.
 */
async function stubExtProc(port: number): Promise<{ kinds: string[]; close: () => void }> {
  const deps = path.join(path.dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps');
  const definition = protoLoader.loadSync('envoy/service/ext_proc/v3/external_processor.proto', {
    keepCase: true,
    oneofs: true,
    enums: String,
    includeDirs: ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => path.join(deps, d)),
  });
  const service = definition['envoy.service.ext_proc.v3.ExternalProcessor'] as grpc.ServiceDefinition;
  const kinds: string[] = [];
  const server = new grpc.Server();
  server.addService(service, {
    Process: (call: grpc.ServerDuplexStream<ProcessingRequest, object>) => {
      call.on('data', (msg: ProcessingRequest) => {
        const kind = msg.request ?? 'unknown';
        kinds.push(kind);
        // request_headers / request_body / response_headers all answer with { response: CommonResponse }.
        const answer: Record<string, object> = { [kind]: { response: { status: 'CONTINUE' } } };
        if (kind === 'request_headers') {
          const rawPath = msg.request_headers?.headers?.headers?.find((h) => h.key === ':path')?.raw_value;
          const reqPath = Buffer.from(rawPath ?? []).toString();
          answer['dynamic_metadata'] = {
            fields: {
              sagamesh: {
                structValue: struct({ saga_id: 'saga-1', saga: 'book-trip', outcome: 'succeeded' }),
              },
              other: { structValue: struct({ leaked: 'yes' }) },
            },
          };
          if (reqPath.startsWith('/nosaga')) {
            answer['mode_override'] = { request_body_mode: 'NONE', response_header_mode: 'SKIP' };
          }
        }
        call.write(answer);
      });
      call.on('end', () => call.end());
      call.on('error', () => undefined); // Envoy cancels the stream when the request ends
    },
  });
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err) =>
      err ? reject(err) : resolve(),
    ),
  );
  return { kinds, close: () => server.forceShutdown() };
}

/** Polls Envoy's output (access logs are flushed about once a second) for a JSON line matching. */
async function accessLogLine(
  envoy: EnvoyProcess,
  match: (entry: Record<string, unknown>) => boolean,
): Promise<Record<string, unknown>> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    for (const line of envoy.logs().split('\n')) {
      if (!line.startsWith('{')) continue;
      const entry = JSON.parse(line) as Record<string, unknown>;
      if (match(entry)) return entry;
    }
    if (Date.now() > deadline) throw new Error(`no matching access log line in:\n${envoy.logs()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('envoy configs validate with the real Envoy', () => {
  test('envoy/ holds envoy.yaml', () => {
    expect(envoyConfigFiles).toContain('envoy.yaml');
  });

  test.each(envoyConfigFiles)('envoy/%s passes envoy --mode validate', async (file) => {
    const result = await validateEnvoyConfig(fs.readFileSync(path.join(ENVOY_DIR, file), 'utf8'));
    expect({ ok: result.ok, output: result.ok ? '' : result.output }).toEqual({ ok: true, output: '' });
  });

  test('renderEnvoyConfig output with non-default ports and access log passes validate', async () => {
    const yaml = renderEnvoyConfig(await freeEnvoyPorts(), { accessLogPath: '/dev/null' });
    const result = await validateEnvoyConfig(yaml);
    expect({ ok: result.ok, output: result.ok ? '' : result.output }).toEqual({ ok: true, output: '' });
  });

  test('a broken config fails validate', async () => {
    const result = await validateEnvoyConfig('static_resources: { listeners: [ { name: x } ] }\n');
    expect(result.ok).toBe(false);
    expect(result.output).not.toBe('');
  });
});

describe('renderEnvoyConfig', () => {
  const ports: EnvoyPorts = {
    ingress: 20000,
    egress: 20001,
    admin: 20002,
    extProc: 20003,
    hotel: 20004,
    flight: 20005,
    car: 20006,
    trips: 20007,
  };

  test('the checked-in file carries DEFAULT_ENVOY_PORTS', () => {
    const config: unknown = YAML.parse(renderEnvoyConfig(DEFAULT_ENVOY_PORTS));
    expect(config).toEqual(YAML.parse(fs.readFileSync(ENVOY_CONFIG_PATH, 'utf8')));
  });

  test('puts each port on its listener / cluster / admin', () => {
    const config = YAML.parse(renderEnvoyConfig(ports)) as Bootstrap;
    expect(config.admin.address.socket_address.port_value).toBe(ports.admin);
    expect(listenerPort(config, 'ingress')).toBe(ports.ingress);
    expect(listenerPort(config, 'egress')).toBe(ports.egress);
    expect(clusterPorts(config, 'sagamesh')).toEqual([ports.extProc]);
    for (const name of ['hotel', 'flight', 'car', 'trips'] as const) {
      expect(clusterPorts(config, name)).toEqual([ports[name]]);
    }
    // Only ports change: addresses stay on loopback.
    expect(config.static_resources.listeners.map((l) => l.address.socket_address.address)).toEqual([
      '127.0.0.1',
      '127.0.0.1',
    ]);
  });

  test('accessLogPath redirects every file access log; default is /dev/stdout', () => {
    const defaults = accessLogPaths(YAML.parse(renderEnvoyConfig(ports)));
    expect(defaults.length).toBeGreaterThan(0);
    expect(new Set(defaults)).toEqual(new Set(['/dev/stdout']));
    const redirected = accessLogPaths(YAML.parse(renderEnvoyConfig(ports, { accessLogPath: '/tmp/x.log' })));
    expect(redirected).toEqual(defaults.map(() => '/tmp/x.log'));
  });

  describe('when envoy.yaml drifts', () => {
    const realRead = fs.readFileSync;
    afterEach(() => jest.restoreAllMocks());

    function withConfig(edit: (config: Bootstrap) => void): void {
      const config = YAML.parse(realRead(ENVOY_CONFIG_PATH, 'utf8')) as Bootstrap;
      edit(config);
      jest
        .spyOn(fs, 'readFileSync')
        .mockImplementation((file: fs.PathOrFileDescriptor, options?: unknown) =>
          file === ENVOY_CONFIG_PATH ? YAML.stringify(config) : realRead(file, options as never),
        );
    }

    test('throws when a listener is missing', () => {
      withConfig((c) => {
        c.static_resources.listeners = c.static_resources.listeners.filter((l) => l.name !== 'egress');
      });
      expect(() => renderEnvoyConfig(ports)).toThrow(/listener "egress" not found/);
    });

    test('throws when a cluster is missing', () => {
      withConfig((c) => {
        c.static_resources.clusters = c.static_resources.clusters.filter((c) => c.name !== 'car');
      });
      expect(() => renderEnvoyConfig(ports)).toThrow(/cluster "car" not found/);
    });
  });
});

describe('startEnvoy', () => {
  test('is ready (admin /ready 200) and gone after stop()', async () => {
    const ports = await freeEnvoyPorts();
    const envoy = await startEnvoy({ configYaml: renderEnvoyConfig(ports), adminPort: ports.admin });
    try {
      expect(envoy.adminUrl).toBe(`http://127.0.0.1:${ports.admin}`);
      expect((await send(ports.admin, { path: '/ready' })).status).toBe(200);
    } finally {
      await envoy.stop();
    }
    expect(isAlive(envoy.pid)).toBe(false);
    await envoy.stop(); // idempotent
  });

  test('rejects with Envoy output when the config is bad', async () => {
    const [admin = 0] = await freePorts(1);
    const bad = `admin: { address: { socket_address: { address: 127.0.0.1, port_value: ${admin} } } }\nnot_a_field: 1\n`;
    await expect(startEnvoy({ configYaml: bad, adminPort: admin })).rejects.toThrow(
      /exited before it was ready/,
    );
  });
});

describe('ingress and egress behaviour', () => {
  let ports: EnvoyPorts;
  let envoy: EnvoyProcess;
  let trips: Awaited<ReturnType<typeof countingServer>>;
  let hotel: Awaited<ReturnType<typeof countingServer>>;
  const big = Buffer.alloc(200 * 1024, 'x'); // well over per_connection_buffer_limit_bytes (64 KiB)

  beforeAll(async () => {
    ports = await freeEnvoyPorts();
    trips = await countingServer(ports.trips, 'trips');
    hotel = await countingServer(ports.hotel, 'hotel');
    // Access logs stay on /dev/stdout, which startEnvoy captures: envoy.logs() shows them.
    envoy = await startEnvoy({ configYaml: renderEnvoyConfig(ports), adminPort: ports.admin });
  });

  afterAll(async () => {
    await envoy?.stop();
    await trips?.close();
    await hotel?.close();
  });

  describe('with nothing on the ext_proc port (sagamesh down)', () => {
    test('fails closed after its connection retries: the coded 503, and the upstream is never called', async () => {
      const before = trips.count();
      const reply = await send(ports.ingress, { method: 'POST', path: '/trips', body: Buffer.from('{}') });
      expect(reply.status).toBe(503);
      expect(JSON.parse(reply.body)).toEqual({
        status: 'failed',
        error: { code: ERRORS.COORDINATOR_UNAVAILABLE.code, message: ERRORS.COORDINATOR_UNAVAILABLE.message },
      });
      expect(trips.count()).toBe(before);
    });

    test('/static/ opts out of ext_proc and reaches the upstream', async () => {
      const before = trips.count();
      const reply = await send(ports.ingress, { path: '/static/app.js' });
      expect(reply).toEqual({ status: 200, body: 'trips' });
      expect(trips.count()).toBe(before + 1);
    });

    test('egress routes by Host, with or without a port; unknown hosts get 404', async () => {
      expect(await send(ports.egress, { path: '/bookings', host: 'hotel' })).toEqual({
        status: 200,
        body: 'hotel',
      });
      expect(await send(ports.egress, { path: '/bookings', host: `hotel:${ports.egress}` })).toEqual({
        status: 200,
        body: 'hotel',
      });
      expect((await send(ports.egress, { path: '/', host: 'nowhere' })).status).toBe(404);
    });
  });

  describe('with an ext_proc server answering CONTINUE', () => {
    let extProc: Awaited<ReturnType<typeof stubExtProc>>;
    beforeAll(async () => {
      extProc = await stubExtProc(ports.extProc);
    });
    afterAll(() => extProc?.close());

    test('a small body passes through ext_proc (headers, body, response headers) to the upstream', async () => {
      const before = trips.count();
      extProc.kinds.length = 0;
      const reply = await send(ports.ingress, { method: 'POST', path: '/trips', body: Buffer.from('{}') });
      expect(reply).toEqual({ status: 200, body: 'trips' });
      expect(trips.count()).toBe(before + 1);
      expect(extProc.kinds).toEqual(['request_headers', 'request_body', 'response_headers']);
    });

    test('the access log carries the sagamesh dynamic metadata, and only that namespace', async () => {
      await send(ports.ingress, { method: 'POST', path: '/trips/metadata', body: Buffer.from('{}') });
      const entry = await accessLogLine(envoy, (e) => e['path'] === '/trips/metadata');
      expect(entry).toMatchObject({
        listener: 'ingress',
        method: 'POST',
        response_code: 200,
        saga_id: 'saga-1',
        saga: 'book-trip',
        saga_outcome: 'succeeded',
      });
      expect(entry['request_id']).toMatch(/^[0-9a-f-]{36}$/); // generated by Envoy
      expect(envoy.logs()).not.toContain('leaked');
    });

    test('mode_override (no saga) skips the body and the response headers', async () => {
      extProc.kinds.length = 0;
      const reply = await send(ports.ingress, { method: 'POST', path: '/nosaga', body: Buffer.from('{}') });
      expect(reply).toEqual({ status: 200, body: 'trips' });
      expect(extProc.kinds).toEqual(['request_headers']);
    });

    test('a 200 KiB body gets 413 from Envoy; neither the upstream nor ext_proc sees the body', async () => {
      const before = trips.count();
      extProc.kinds.length = 0;
      const reply = await send(ports.ingress, { method: 'POST', path: '/trips', body: big });
      expect(reply.status).toBe(413);
      expect(trips.count()).toBe(before);
      // ext_proc saw the request headers and the 413's response headers, never a request body.
      expect(extProc.kinds).toEqual(['request_headers', 'response_headers']);
    });
  });
});

/**
 * The opt-in form docs/envoy.md describes for a busy ingress: the ext_proc filter disabled by
 * default (`disabled: true` in http_filters) and turned on only on the routes sagas match
 * (FilterConfig → ExtProcPerRoute { overrides: {} }), derived from envoy/envoy.yaml.
 */
describe('ext_proc opted in per route (docs/envoy.md)', () => {
  let ports: EnvoyPorts;
  let envoy: EnvoyProcess;
  let trips: Awaited<ReturnType<typeof countingServer>>;

  beforeAll(async () => {
    ports = await freeEnvoyPorts();
    trips = await countingServer(ports.trips, 'trips');
    const config = YAML.parse(renderEnvoyConfig(ports)) as Bootstrap;
    const listener = named(config.static_resources.listeners, 'ingress') as unknown as {
      filter_chains: { filters: { typed_config: Record<string, unknown> }[] }[];
    };
    const hcm = listener.filter_chains[0]?.filters[0]?.typed_config as {
      http_filters: { name: string; disabled?: boolean }[];
      route_config: { virtual_hosts: { routes: Record<string, unknown>[] }[] };
    };
    named(hcm.http_filters, 'envoy.filters.http.ext_proc').disabled = true;
    hcm.route_config.virtual_hosts[0]?.routes.unshift({
      match: { path: '/trips' },
      route: { cluster: 'trips', timeout: '0s' },
      typed_per_filter_config: {
        'envoy.filters.http.ext_proc': {
          '@type': 'type.googleapis.com/envoy.config.route.v3.FilterConfig',
          config: {
            '@type': 'type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute',
            overrides: {},
          },
        },
      },
    });
    envoy = await startEnvoy({ configYaml: YAML.stringify(config), adminPort: ports.admin });
  });

  afterAll(async () => {
    await envoy?.stop();
    await trips?.close();
  });

  // Nothing listens on the ext_proc port: a route with the filter on fails closed (503 after the
  // connection retries).
  test('a route that opts in goes through ext_proc', async () => {
    const before = trips.count();
    const reply = await send(ports.ingress, { method: 'POST', path: '/trips', body: Buffer.from('{}') });
    expect(reply.status).toBe(503);
    expect(trips.count()).toBe(before);
  });

  test('every other route skips ext_proc and reaches the upstream', async () => {
    const before = trips.count();
    const reply = await send(ports.ingress, { method: 'POST', path: '/orders', body: Buffer.from('{}') });
    expect(reply).toEqual({ status: 200, body: 'trips' });
    expect(trips.count()).toBe(before + 1);
  });
});
