/**
 * An Envoy bootstrap that is a loopback model of the `trips` pod's Istio sidecar, built in two
 * clearly separated halves:
 *
 *  1. What Istio generates for the pod anyway (stand-ins, written here): an inbound HTTP listener
 *     whose router sends to the app (Istio's default inbound route: one catch-all route, timeout
 *     0s), an outbound port-80 listener that routes by Host to the Services of the namespace (the
 *     listener that captures sagamesh's step calls), and the clusters behind both.
 *  2. What the manifests add (from deploy/kubernetes, untouched): the EnvoyFilter's configPatches,
 *     applied the way Istio applies them, and the pod's ProxyConfig `runtimeValues`
 *     (`proxy.istio.io/config`), rendered into the bootstrap's static runtime layer the way
 *     istio-agent renders them. Only the operations the manifests use are implemented; any other
 *     patch fails the build, so a new Envoy fragment in the manifests cannot go untested.
 *
 * The one rewrite of the manifests' values: a pod has its own loopback, the test host shares one,
 * so pod-local ports (127.0.0.1:50051 for sagamesh's gRPC) are mapped to free ports, explicitly.
 * Istio's own HTTP filters (metadata exchange, authn, RBAC, stats) are not in stock Envoy and are
 * not modelled; the ext_proc filter is inserted before the router as in a real sidecar.
 */
import YAML from 'yaml';
import type { K8sObject } from './k8s';
import { specOf } from './k8s';

type Json = Record<string, unknown>;

const HCM = 'envoy.filters.network.http_connection_manager';
const HCM_TYPE =
  'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const ROUTER = 'envoy.filters.http.router';
const ROUTER_FILTER = {
  name: ROUTER,
  typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' },
};

export interface EnvoyFilterPatch {
  applyTo: string;
  match?: {
    context?: string;
    listener?: {
      portNumber?: number;
      filterChain?: { filter?: { name?: string; subFilter?: { name?: string } } };
    };
  };
  patch: { operation: string; value: Json };
}

export function envoyFilterPatches(envoyFilter: K8sObject): EnvoyFilterPatch[] {
  const patches = specOf<{ configPatches?: EnvoyFilterPatch[] }>(envoyFilter).configPatches;
  if (!Array.isArray(patches) || patches.length === 0) {
    throw new Error(`EnvoyFilter ${envoyFilter.metadata.name} has no configPatches`);
  }
  return patches;
}

/** A Service of the namespace that the outbound port-80 listener routes to, and where it runs here. */
export interface MeshService {
  readonly name: string;
  readonly namespace: string;
  /** The loopback port the test runs it on. */
  readonly port: number;
}

export interface SidecarModel {
  /** Inbound listener (client traffic to the app's port). */
  readonly inboundPort: number;
  /** The app container's port (Istio's inbound filter chains match it as `portNumber`). */
  readonly appContainerPort: number;
  /** Where the app runs here. */
  readonly appPort: number;
  /** The outbound port-80 listener that captures sagamesh's step calls. */
  readonly outboundPort: number;
  readonly adminPort: number;
  readonly services: readonly MeshService[];
  /** Pod-local loopback port → the port used for it here (e.g. 50051 → a free port). */
  readonly podLoopbackPorts: Readonly<Record<number, number>>;
  readonly accessLogPath: string;
  /** The pod's ProxyConfig `runtimeValues` (proxyConfigOf), as written in the manifests. */
  readonly runtimeValues?: Readonly<Record<string, string>>;
}

/** The ProxyConfig a pod template sets in its `proxy.istio.io/config` annotation ({} if none). */
export interface ProxyConfig {
  runtimeValues?: Record<string, string>;
  [field: string]: unknown;
}

export function proxyConfigOf(annotations: Readonly<Record<string, string>> | undefined): ProxyConfig {
  const text = annotations?.['proxy.istio.io/config'];
  if (text === undefined) return {};
  const parsed = YAML.parse(text) as unknown;
  if (typeof parsed !== 'object' || parsed === null)
    throw new Error('proxy.istio.io/config is not a mapping');
  const config = parsed as ProxyConfig;
  // ProxyConfig.runtime_values is map<string, string>: Istio rejects anything else.
  for (const [key, value] of Object.entries(config.runtimeValues ?? {})) {
    if (typeof value !== 'string')
      throw new Error(`runtimeValues.${key} must be a string, got ${typeof value}`);
  }
  return config;
}

/**
 * The static runtime layer istio-agent writes into the sidecar's bootstrap for the pod's
 * `runtimeValues`: pkg/bootstrap/config.go extractRuntimeFlags (Istio 1.19+, istio/istio#45869).
 * The API takes strings, so Istio turns exactly "true" and "false" into JSON booleans (Envoy stopped
 * reading the strings as booleans, envoyproxy/envoy#27434); any other value stays a string; "" removes
 * one of Istio's own defaults. Istio's defaults (connection limit, re2 program size, two legacy
 * flags) are left out: they are not what sagamesh sets.
 */
export function istioRuntimeFlags(runtimeValues: Readonly<Record<string, string>>): Json {
  const flags: Json = {};
  for (const [key, value] of Object.entries(runtimeValues)) {
    if (value === '') continue;
    flags[key] = value === 'true' ? true : value === 'false' ? false : value;
  }
  return flags;
}

/** Istio's bootstrap template: the static layer "global config", then an admin layer. */
export function istioLayeredRuntime(runtimeValues: Readonly<Record<string, string>>): Json {
  return {
    layers: [
      { name: 'global config', static_layer: istioRuntimeFlags(runtimeValues) },
      { name: 'admin', admin_layer: {} },
    ],
  };
}

function clone<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

function staticCluster(name: string, port: number): Json {
  return {
    name,
    type: 'STATIC',
    connect_timeout: '1s',
    load_assignment: {
      cluster_name: name,
      endpoints: [{ lb_endpoints: [{ endpoint: { address: socket('127.0.0.1', port) } }] }],
    },
  };
}

function socket(address: string, port: number): Json {
  return { socket_address: { address, port_value: port } };
}

/** Rewrites every 127.0.0.1 endpoint of a cluster through the pod-loopback map; unmapped ports throw. */
function mapLoopbackEndpoints(node: unknown, ports: Readonly<Record<number, number>>, where: string): void {
  if (Array.isArray(node)) {
    for (const item of node) mapLoopbackEndpoints(item, ports, where);
    return;
  }
  if (typeof node !== 'object' || node === null) return;
  const obj = node as Json;
  const sa = obj['socket_address'] as { address?: string; port_value?: number } | undefined;
  if (sa && (sa.address === '127.0.0.1' || sa.address === 'localhost')) {
    const mapped = ports[Number(sa.port_value)];
    if (mapped === undefined) throw new Error(`${where}: pod-local port ${sa.port_value} has no test port`);
    sa.port_value = mapped;
  }
  for (const value of Object.values(obj)) mapLoopbackEndpoints(value, ports, where);
}

function unsupported(p: EnvoyFilterPatch): Error {
  return new Error(
    `EnvoyFilter patch ${p.applyTo}/${p.patch.operation} (context ${p.match?.context ?? 'ANY'}) is not ` +
      'modelled by test/helpers/k8s-bootstrap.ts: extend it so the new fragment is tested too',
  );
}

/** The access log of the inbound listener: the saga fields sagamesh returns as dynamic metadata. */
function inboundAccessLog(file: string): Json {
  return {
    name: 'envoy.access_loggers.file',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog',
      path: file,
      log_format: {
        json_format: {
          method: '%REQ(:METHOD)%',
          path: '%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%',
          response_code: '%RESPONSE_CODE%',
          saga_id: '%DYNAMIC_METADATA(sagamesh:saga_id)%',
          saga: '%DYNAMIC_METADATA(sagamesh:saga)%',
          saga_outcome: '%DYNAMIC_METADATA(sagamesh:outcome)%',
        },
      },
    },
  };
}

/** Builds the bootstrap (as an object) from the stand-ins and the EnvoyFilter patches. */
export function sidecarBootstrap(patches: readonly EnvoyFilterPatch[], model: SidecarModel): Json {
  // --- 1. Istio's own config for the pod (stand-ins) -------------------------------------------
  const inboundCluster = `inbound|${model.appContainerPort}||`;
  const inboundHttpFilters: Json[] = [clone(ROUTER_FILTER)];
  const inbound = {
    name: 'virtualInbound',
    address: socket('127.0.0.1', model.inboundPort),
    filter_chains: [
      {
        filters: [
          {
            name: HCM,
            typed_config: {
              '@type': HCM_TYPE,
              stat_prefix: `inbound_0.0.0.0_${model.appContainerPort}`,
              // Istio's default meshConfig.pathNormalization (BASE): RFC 3986 normalisation only.
              normalize_path: true,
              access_log: [inboundAccessLog(model.accessLogPath)],
              http_filters: inboundHttpFilters,
              route_config: {
                name: inboundCluster,
                validate_clusters: false,
                virtual_hosts: [
                  {
                    name: `inbound|http|${model.appContainerPort}`,
                    domains: ['*'],
                    // Istio's BuildDefaultHTTPInboundRoute: one catch-all route, no timeout.
                    routes: [{ match: { prefix: '/' }, route: { cluster: inboundCluster, timeout: '0s' } }],
                  },
                ],
              },
            },
          },
        ],
      },
    ],
  };

  // Outbound 0.0.0.0_80: one virtual host per port-80 Service, its FQDN and the short names a pod
  // of the same namespace may use; no retry policy (the manifests' VirtualServices set attempts 0).
  const outboundClusters: Json[] = [];
  const virtualHosts = model.services.map((svc) => {
    const fqdn = `${svc.name}.${svc.namespace}.svc.cluster.local`;
    const cluster = `outbound|80||${fqdn}`;
    outboundClusters.push(staticCluster(cluster, svc.port));
    return {
      name: `${fqdn}:80`,
      domains: [fqdn, svc.name, `${svc.name}.${svc.namespace}.svc`, `${svc.name}.${svc.namespace}`],
      routes: [{ match: { prefix: '/' }, route: { cluster, timeout: '0s' } }],
    };
  });
  const outbound = {
    name: '0.0.0.0_80',
    address: socket('127.0.0.1', model.outboundPort),
    filter_chains: [
      {
        filters: [
          {
            name: HCM,
            typed_config: {
              '@type': HCM_TYPE,
              stat_prefix: 'outbound_0.0.0.0_80',
              http_filters: [clone(ROUTER_FILTER)],
              route_config: {
                name: '80',
                validate_clusters: false,
                ignore_port_in_host_matching: true,
                virtual_hosts: virtualHosts,
              },
            },
          },
        ],
      },
    ],
  };
  const clusters: Json[] = [staticCluster(inboundCluster, model.appPort), ...outboundClusters];

  // --- 2. The manifests' EnvoyFilter patches, as Istio applies them ------------------------------
  for (const p of patches) {
    const context = p.match?.context ?? 'ANY';
    const value = clone(p.patch.value);
    if (
      p.applyTo === 'CLUSTER' &&
      p.patch.operation === 'ADD' &&
      ['SIDECAR_OUTBOUND', 'ANY'].includes(context)
    ) {
      mapLoopbackEndpoints(value, model.podLoopbackPorts, `cluster ${String(value['name'])}`);
      clusters.push(value);
      continue;
    }
    if (
      p.applyTo === 'NETWORK_FILTER' &&
      p.patch.operation === 'MERGE' &&
      context === 'SIDECAR_INBOUND' &&
      p.match?.listener?.filterChain?.filter?.name === HCM &&
      p.match.listener.filterChain.filter.subFilter === undefined
    ) {
      // Istio merges the value into the filter as a protobuf message (messages field by field,
      // repeated fields appended); the typed_config's @type must be the filter's own.
      const hcm = inbound.filter_chains[0]?.filters[0];
      if (!hcm) throw new Error('EnvoyFilter: no inbound connection manager to merge into');
      protoMerge(hcm, value);
      continue;
    }
    if (
      p.applyTo === 'HTTP_FILTER' &&
      p.patch.operation === 'INSERT_BEFORE' &&
      context === 'SIDECAR_INBOUND'
    ) {
      const listener = p.match?.listener;
      const filter = listener?.filterChain?.filter;
      if (filter?.name !== HCM || filter.subFilter?.name === undefined) throw unsupported(p);
      if (listener?.portNumber !== undefined && listener.portNumber !== model.appContainerPort) continue;
      const at = inboundHttpFilters.findIndex((f) => f['name'] === filter.subFilter?.name);
      if (at < 0)
        throw new Error(`EnvoyFilter: no inbound HTTP filter ${filter.subFilter.name} to insert before`);
      inboundHttpFilters.splice(at, 0, value);
      continue;
    }
    throw unsupported(p);
  }

  return {
    admin: { address: socket('127.0.0.1', model.adminPort) },
    layered_runtime: istioLayeredRuntime(model.runtimeValues ?? {}),
    static_resources: { listeners: [inbound, outbound], clusters },
  };
}

/** Merges `from` into `into` the way protobuf's MergeFrom does on JSON: maps recursively, lists appended. */
function protoMerge(into: Json, from: Json): void {
  for (const [key, value] of Object.entries(from)) {
    const current = into[key];
    if (Array.isArray(current) && Array.isArray(value)) current.push(...(value as unknown[]));
    else if (isJson(current) && isJson(value)) {
      if (key === 'typed_config' && current['@type'] !== value['@type'])
        throw new Error(`EnvoyFilter MERGE: ${String(value['@type'])} into ${String(current['@type'])}`);
      protoMerge(current, value);
    } else into[key] = clone(value);
  }
}

function isJson(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function sidecarBootstrapYaml(patches: readonly EnvoyFilterPatch[], model: SidecarModel): string {
  return YAML.stringify(sidecarBootstrap(patches, model), { lineWidth: 0 });
}
