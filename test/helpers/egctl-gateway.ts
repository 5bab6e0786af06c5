/**
 * Envoy Gateway's own translation of deploy/kubernetes/overlays/envoy-gateway, run offline with
 * `egctl x translate --from gateway-api --to xds` (Envoy Gateway's translator code, built by
 * scripts/ci/install-translators.sh), turned into one Envoy bootstrap that runs on loopback.
 *
 * egctl's input: the overlay's Gateway API and Envoy Gateway objects and the Services they name,
 * plus what a cluster with Envoy Gateway installed has and the overlay does not ship:
 *  - the GatewayClass `eg` (Envoy Gateway's Helm chart and quickstart create it);
 *  - a ClusterIP on each Service (the apiserver assigns one). egctl routes to the Service's
 *    ClusterIP (its translator runs with EndpointRoutingDisabled), where a running Envoy Gateway
 *    routes to the EndpointSlices' pod IPs: the same cluster, other addresses.
 * egctl renders the bootstrap for "the" EnvoyProxy of its input (it loads the one EnvoyProxy as the
 * GatewayClass's), which is the overlay's `sagamesh-edge` that the Gateway names.
 *
 * What gatewayRunConfig changes in egctl's output, each for the reason given, and nothing else:
 * see RunConfig.rewrites (the test compares that list with the one it expects).
 */
import type { K8sObject } from './k8s';
import { specOf } from './k8s';
import type { AddressMap, Json, RunConfig } from './xds-static';
import {
  clone,
  deleteField,
  field,
  inlineRoutes,
  isJson,
  setField,
  setLoopbackSocket,
  socketOf,
  staticClusters,
} from './xds-static';
import { runTranslator, toYaml } from './translators';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** The objects egctl reads; the rest of the overlay (Deployments, NetworkPolicy, Istio's) is not its. */
const EGCTL_KINDS = ['Namespace', 'Service', 'Gateway', 'HTTPRoute', 'EnvoyExtensionPolicy', 'EnvoyProxy'];

/** Envoy Gateway's GatewayClass, as its Helm chart installs it. */
export const GATEWAY_CLASS: K8sObject & { spec: unknown } = Object.freeze({
  apiVersion: 'gateway.networking.k8s.io/v1',
  kind: 'GatewayClass',
  metadata: { name: 'eg' },
  spec: { controllerName: 'gateway.envoyproxy.io/gatewayclass-controller' },
});

export interface EgctlInput {
  readonly yaml: string;
  /** Service name → the ClusterIP given to it. */
  readonly clusterIPs: Readonly<Record<string, string>>;
}

export function egctlInput(objects: readonly K8sObject[]): EgctlInput {
  const clusterIPs: Record<string, string> = {};
  let next = 10;
  const selected = objects
    .filter((o) => EGCTL_KINDS.includes(o.kind))
    .map((o) => {
      const copy = clone(o);
      if (copy.kind === 'Service') {
        const spec = specOf<{ clusterIP?: string }>(copy);
        spec.clusterIP = `10.96.0.${next++}`;
        clusterIPs[copy.metadata.name] = spec.clusterIP;
      }
      return copy;
    });
  return { yaml: toYaml([GATEWAY_CLASS, ...selected]), clusterIPs };
}

export interface GatewayXds {
  readonly bootstrap: Json;
  readonly listeners: Json[];
  readonly clusters: Json[];
  readonly routes: Json[];
  readonly endpoints: Json[];
}

interface ConfigDump {
  configs: Json[];
}

/** `egctl x translate --from gateway-api --to xds -o json` on the input; the one gateway's xDS. */
export function egctlTranslate(input: EgctlInput): { key: string; xds: GatewayXds } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sagamesh-egctl-'));
  try {
    const file = path.join(dir, 'input.yaml');
    fs.writeFileSync(file, input.yaml);
    const out = runTranslator('egctl', [
      'x',
      'translate',
      '--from',
      'gateway-api',
      '--to',
      'xds',
      '--type',
      'all',
      '-o',
      'json',
      '-f',
      file,
    ]);
    const parsed = JSON.parse(out) as { xds?: Record<string, ConfigDump> };
    const entries = Object.entries(parsed.xds ?? {});
    const [entry] = entries;
    if (!entry || entries.length !== 1)
      throw new Error(`egctl: ${entries.length} gateways translated, 1 expected:\n${out.slice(0, 2000)}`);
    const [key, dump] = entry;
    const byType = (suffix: string): Json => {
      const found = dump.configs.find((c) => String(c['@type']).endsWith(suffix));
      if (!found) throw new Error(`egctl: no ${suffix} in the config dump of ${key}`);
      return found;
    };
    const list = (dumpPart: Json, listKey: string, inner: string): Json[] =>
      ((field(dumpPart, listKey) as Json[] | undefined) ?? []).map((d) => {
        const value = inner.split('.').reduce<unknown>((o, k) => (isJson(o) ? field(o, k) : undefined), d);
        if (!isJson(value)) throw new Error(`egctl: ${listKey} entry without ${inner}`);
        const copy = clone(value);
        delete copy['@type'];
        return copy;
      });
    return {
      key,
      xds: {
        bootstrap: field(byType('BootstrapConfigDump'), 'bootstrap') as Json,
        listeners: list(byType('ListenersConfigDump'), 'dynamic_listeners', 'active_state.listener'),
        clusters: list(byType('ClustersConfigDump'), 'dynamic_active_clusters', 'cluster'),
        routes: list(byType('RoutesConfigDump'), 'dynamic_route_configs', 'route_config'),
        endpoints: list(byType('EndpointsConfigDump'), 'dynamic_endpoint_configs', 'endpoint_config'),
      },
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export interface GatewayPorts {
  readonly listener: number;
  readonly admin: number;
  /** ClusterIP of a Service → the loopback port its workload runs on here, per Service port. */
  readonly services: Readonly<Record<string, Readonly<Record<number, number>>>>;
}

/**
 * egctl's bootstrap with the pushed listeners, clusters and routes in its static_resources, on
 * loopback. `clusterIPs` names the Services (for the rewrite list).
 */
export function gatewayRunConfig(
  xds: GatewayXds,
  ports: GatewayPorts,
  clusterIPs: Readonly<Record<string, string>>,
): RunConfig {
  const rewrites: string[] = [];
  const bootstrap = clone(xds.bootstrap);

  // Envoy's admin: egctl's 127.0.0.1:19000 is a pod-local port; the test host shares one loopback.
  const admin = field(bootstrap, 'admin') as Json;
  const adminSocket = socketOf(admin);
  setLoopbackSocket(admin, ports.admin);
  rewrites.push(`admin ${adminSocket.address}:${adminSocket.port} → a free loopback port`);

  // No Envoy Gateway control plane runs: the xDS comes from egctl, statically.
  if (field(bootstrap, 'dynamic_resources') === undefined)
    throw new Error('egctl bootstrap: no dynamic_resources');
  deleteField(bootstrap, 'dynamic_resources');
  rewrites.push('dynamic_resources (ADS) removed: the xDS egctl printed is given statically');

  const resources = (field(bootstrap, 'static_resources') ?? {}) as Json;
  const bootClusters = ((field(resources, 'clusters') as Json[] | undefined) ?? []).filter((c) => {
    if (c['name'] !== 'xds_cluster') return true;
    rewrites.push(
      'cluster xds_cluster (Envoy Gateway, TLS with certificates from /sds) removed: no control plane',
    );
    return false;
  });
  const bootListeners = (field(resources, 'listeners') as Json[] | undefined) ?? [];
  for (const l of bootListeners) {
    const s = socketOf(l);
    setLoopbackSocket(l, 0);
    rewrites.push(`listener ${String(l['name'])}: ${s.address}:${s.port} → 127.0.0.1, any free port`);
  }

  // The pushed listeners: the Gateway's HTTP listener (`<namespace>/<gateway>/<listener>`) on the
  // loopback port the test sends to; Envoy Gateway's own (readiness) on any free one; RDS inlined.
  const listeners = xds.listeners.map(clone);
  const gatewayListeners = listeners.filter((l) => String(l['name']).split('/').length === 3);
  if (gatewayListeners.length !== 1)
    throw new Error(`egctl: ${gatewayListeners.length} Gateway listeners, 1 expected`);
  for (const l of listeners) {
    const s = socketOf(l);
    const isGateway = gatewayListeners.includes(l);
    setLoopbackSocket(l, isGateway ? ports.listener : 0);
    rewrites.push(
      `listener ${String(l['name'])}: ${s.address}:${s.port} → ${isGateway ? 'the loopback port the test sends to' : '127.0.0.1, any free port'}`,
    );
  }
  const inlined = inlineRoutes(listeners, xds.routes);
  if (inlined > 0) rewrites.push(`RDS → the pushed routes inlined (${inlined})`);

  // Addresses: the admin port (egctl's prometheus_stats cluster), the Services' ClusterIPs.
  const serviceOf = Object.fromEntries(Object.entries(clusterIPs).map(([name, ip]) => [ip, name]));
  const seen = new Set<string>();
  const map: AddressMap = (address, port) => {
    if (address === adminSocket.address && port === adminSocket.port) return ports.admin;
    const mapped = ports.services[address]?.[port];
    if (mapped !== undefined && !seen.has(`${address}:${port}`)) {
      seen.add(`${address}:${port}`);
      rewrites.push(`endpoint ${address}:${port} (Service ${serviceOf[address] ?? '?'}) → its loopback port`);
    }
    return mapped;
  };
  const eds = [...xds.clusters, ...bootClusters].filter((c) => field(c, 'type') === 'EDS');
  const clusters = [
    ...staticClusters(bootClusters, [], map),
    ...staticClusters(xds.clusters, xds.endpoints, map),
  ];
  if (eds.length > 0)
    rewrites.push(`EDS → the pushed endpoints as static load assignments (${eds.length} clusters)`);

  setField(bootstrap, 'static_resources', {
    ...resources,
    listeners: [...bootListeners, ...listeners],
    clusters,
  });
  return { bootstrap, rewrites };
}
