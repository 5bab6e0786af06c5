/**
 * docker-compose.yml is the container twin of the process setup the integration tests run
 * (demo/envoy.ts + envoy/envoy.yaml). Docker is not needed: this parses the files and checks that
 * versions, ports, addresses and the shared network namespace agree.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { DEFAULT_ENVOY_PORTS, ENVOY_CONFIG_PATH, envoyBinary } from '../../demo/envoy';

const ROOT = path.resolve(__dirname, '..', '..');
const PARTICIPANTS = ['hotel', 'flight', 'car', 'trips'] as const;
const CONTAINER_CONFIG = '/etc/envoy/envoy.yaml';

interface Service {
  image?: string;
  build?: unknown;
  command?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
  network_mode?: string;
}
interface Compose {
  services: Record<string, Service>;
}

interface SocketAddress {
  address: string;
  port_value: number;
}
interface Bootstrap {
  admin: { address: { socket_address: SocketAddress } };
  static_resources: {
    listeners: { name: string; address: { socket_address: SocketAddress } }[];
    clusters: {
      name: string;
      load_assignment: {
        endpoints: { lb_endpoints: { endpoint: { address: { socket_address: SocketAddress } } }[] }[];
      };
    }[];
  };
}

// Compose files use `<<: *anchor` merge keys.
const compose = YAML.parse(fs.readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8'), {
  merge: true,
}) as Compose;
const envoyYamlText = fs.readFileSync(ENVOY_CONFIG_PATH, 'utf8');
const envoyYaml = YAML.parse(envoyYamlText) as Bootstrap;

function service(name: string): Service {
  const svc = compose.services[name];
  if (!svc) throw new Error(`docker-compose.yml has no service "${name}"`);
  return svc;
}

function listener(name: string): SocketAddress {
  const found = envoyYaml.static_resources.listeners.find((l) => l.name === name);
  if (!found) throw new Error(`envoy.yaml has no listener ${name}`);
  return found.address.socket_address;
}

/** The single endpoint of a cluster (the demo has one per cluster). */
function clusterEndpoint(name: string): SocketAddress {
  const found = envoyYaml.static_resources.clusters.find((c) => c.name === name);
  if (!found) throw new Error(`envoy.yaml has no cluster ${name}`);
  const endpoints = found.load_assignment.endpoints.flatMap((l) => l.lb_endpoints);
  expect(endpoints).toHaveLength(1);
  const first = endpoints[0];
  if (!first) throw new Error(`cluster ${name}: no endpoint`);
  return first.endpoint.address.socket_address;
}

/** The shell line the envoy container runs (`sh -c <line>`). */
function envoyShellLine(): string {
  const command = service('envoy').command ?? [];
  expect(command.slice(0, 2)).toEqual(['sh', '-c']);
  return command[2] ?? '';
}

describe('docker-compose.yml matches the process twin', () => {
  test('the envoy image is the version of the installed Envoy', () => {
    const out = execFileSync(envoyBinary(), ['--version'], { encoding: 'utf8' });
    const version = /version:\s*\S*?\/(\d+\.\d+\.\d+)\//.exec(out)?.[1];
    expect(version).toBeDefined();
    expect(service('envoy').image).toBe(`envoyproxy/envoy:v${version}`);
  });

  test('the envoy container runs the checked-in envoy/envoy.yaml', () => {
    expect(service('envoy').volumes).toContain(`./envoy/envoy.yaml:${CONTAINER_CONFIG}:ro`);
    expect(envoyShellLine()).toContain(` ${CONTAINER_CONFIG} > /tmp/envoy.yaml`);
    expect(envoyShellLine()).toContain('exec envoy -c /tmp/envoy.yaml');
  });

  test("the envoy container's rewrite only widens the ingress and admin bind addresses", () => {
    // Run the container's sed against the real file (same GNU sed) and compare the configs.
    const sedPart = envoyShellLine().split('&&')[0] ?? '';
    const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'sagamesh-compose-')), 'envoy.yaml');
    try {
      execFileSync('sh', [
        '-c',
        sedPart.replace(CONTAINER_CONFIG, ENVOY_CONFIG_PATH).replace('/tmp/envoy.yaml', out),
      ]);
      const rewritten = YAML.parse(fs.readFileSync(out, 'utf8')) as Bootstrap;
      const expected = YAML.parse(envoyYamlText) as Bootstrap;
      expected.admin.address.socket_address.address = '0.0.0.0';
      const ingress = expected.static_resources.listeners.find((l) => l.name === 'ingress');
      ingress!.address.socket_address.address = '0.0.0.0';
      expect(rewritten).toEqual(expected);
    } finally {
      fs.rmSync(path.dirname(out), { recursive: true, force: true });
    }
  });

  test('ingress and admin are published on the host loopback at the default ports', () => {
    const { ingress, admin } = DEFAULT_ENVOY_PORTS;
    expect(listener('ingress').port_value).toBe(ingress);
    expect(envoyYaml.admin.address.socket_address.port_value).toBe(admin);
    expect(service('envoy').ports).toEqual([
      `127.0.0.1:${ingress}:${ingress}`,
      `127.0.0.1:${admin}:${admin}`,
    ]);
  });

  test.each(PARTICIPANTS)('%s: compose PORT = DEFAULT_ENVOY_PORTS = envoy.yaml cluster port', (name) => {
    const svc = service(name);
    expect(svc.command).toEqual(['node', 'dist/demo/main.js', name]);
    expect(Number(svc.environment?.['PORT'])).toBe(DEFAULT_ENVOY_PORTS[name]);
    expect(clusterEndpoint(name)).toEqual({ address: '127.0.0.1', port_value: DEFAULT_ENVOY_PORTS[name] });
  });

  test('sagamesh listens where the ext_proc cluster points and calls the egress listener', () => {
    const svc = service('sagamesh');
    const env = svc.environment ?? {};
    const extProc = clusterEndpoint('sagamesh');
    const egress = listener('egress');
    expect(extProc.port_value).toBe(DEFAULT_ENVOY_PORTS.extProc);
    expect(egress.port_value).toBe(DEFAULT_ENVOY_PORTS.egress);
    expect(env['SAGAMESH_GRPC_ADDR']).toBe(`${extProc.address}:${extProc.port_value}`);
    expect(env['SAGAMESH_EGRESS_URL']).toBe(`http://${egress.address}:${egress.port_value}`);
    expect(svc.command).toEqual(['node', 'dist/src/main.js']);
    expect(svc.volumes).toContain(`./sagas:${env['SAGAMESH_SAGAS_DIR']}:ro`);
  });

  test('every envoy.yaml cluster is a compose service', () => {
    const clusters = envoyYaml.static_resources.clusters.map((c) => c.name);
    expect(clusters.sort()).toEqual(['car', 'flight', 'hotel', 'sagamesh', 'trips']);
    for (const name of clusters) expect(Object.keys(compose.services)).toContain(name);
  });

  test("every other service shares envoy's network namespace (pod + sidecar)", () => {
    const others = Object.entries(compose.services).filter(([name]) => name !== 'envoy');
    expect(others.length).toBeGreaterThan(0);
    for (const [name, svc] of others) {
      expect({ name, network_mode: svc.network_mode }).toEqual({ name, network_mode: 'service:envoy' });
      expect({ name, ports: svc.ports }).toEqual({ name, ports: undefined }); // only envoy can publish
    }
    // The premise: envoy.yaml only talks to loopback.
    for (const c of envoyYaml.static_resources.clusters)
      expect(clusterEndpoint(c.name).address).toBe('127.0.0.1');
  });

  test('the app image is built from the Dockerfile and runs files the build produces', () => {
    const dockerfile = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
    expect(dockerfile).toMatch(/^ENV ENVOY_BIN=\/bin\/true$/m); // the image never installs or runs Envoy
    for (const [name, svc] of Object.entries(compose.services)) {
      if (name === 'envoy') continue;
      expect({ name, image: svc.image, build: svc.build }).toEqual({
        name,
        image: 'sagamesh:dev',
        build: '.',
      });
      const entry = svc.command?.[1] ?? '';
      // dist/<dir>/<file>.js is compiled from <dir>/<file>.ts (tsconfig rootDir ".").
      const source = entry.replace(/^dist\//, '').replace(/\.js$/, '.ts');
      expect(fs.existsSync(path.join(ROOT, source))).toBe(true);
    }
  });
});
