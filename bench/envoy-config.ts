import YAML from 'yaml';
import type { EnvoyPorts } from '../demo/envoy';
import { renderEnvoyConfig } from '../demo/envoy';

/**
 * The bench's Envoy bootstrap, derived from the checked-in envoy/envoy.yaml (through
 * demo/envoy.ts renderEnvoyConfig, so a drift in that file fails here too):
 *
 * - one ingress listener per sagamesh variant (`ingress-<variant>`), each a copy of `ingress` whose
 *   ext_proc filter is unchanged except for the cluster it names (`sagamesh-<variant>`, a copy of
 *   the `sagamesh` cluster) — the filter config stays identical to envoy/envoy.yaml's; the
 *   pass-through baseline bench/extproc-min gets one too (`ingress-extproc-min`);
 * - `ingress-plain`: the same listener without the ext_proc filter, the pass-through baseline;
 * - egress: virtual hosts p1…p9 (routed by Host, like hotel/flight/car), and one catch-all virtual
 *   host routing by path prefix `/pN/` (prefix rewritten to `/`), because DTM cannot set a Host
 *   header per branch: DTM's branch calls go through the same egress that way;
 * - clusters p1…p9, copies of `hotel` (same circuit breakers) with the participants' ports;
 * - access logs removed from every listener, for every system alike (a file write per request
 *   would be measured, not the systems).
 */
export interface BenchEnvoyPorts {
  readonly admin: number;
  readonly egress: number;
  /** The upstream app of the pass-through case (cluster `trips`). */
  readonly upstream: number;
  readonly plainIngress: number;
  /** variant name → its ingress listener port and its sagamesh's ext_proc port */
  readonly variants: Readonly<Record<string, { readonly ingress: number; readonly extProc: number }>>;
  readonly participants: Readonly<Record<string, number>>;
}

type Json = Record<string, unknown>;

const HCM = 'envoy.filters.network.http_connection_manager';
const EXT_PROC = 'envoy.filters.http.ext_proc';

function clone<T>(v: T): T {
  return structuredClone(v);
}

function named(list: Json[], name: string): Json {
  const found = list.find((x) => x['name'] === name);
  if (!found) throw new Error(`bench envoy config: "${name}" not found`);
  return found;
}

function hcmOf(listener: Json): Json {
  const chains = listener['filter_chains'] as Json[];
  const filters = chains[0]?.['filters'] as Json[];
  return named(filters, HCM)['typed_config'] as Json;
}

function setPort(holder: Json, port: number): void {
  ((holder['address'] as Json)['socket_address'] as Json)['port_value'] = port;
}

function setEndpointPort(cluster: Json, port: number, name: string): void {
  cluster['name'] = name;
  const assignment = cluster['load_assignment'] as Json;
  assignment['cluster_name'] = name;
  for (const locality of assignment['endpoints'] as Json[]) {
    for (const lb of locality['lb_endpoints'] as Json[]) setPort(lb['endpoint'] as Json, port);
  }
}

function removeAccessLogs(listener: Json): void {
  delete hcmOf(listener)['access_log'];
}

export function renderBenchEnvoyConfig(ports: BenchEnvoyPorts): string {
  const variants = Object.entries(ports.variants);
  const first = variants[0];
  if (!first) throw new Error('bench envoy config: at least one sagamesh variant');
  const base: EnvoyPorts = {
    ingress: first[1].ingress,
    egress: ports.egress,
    admin: ports.admin,
    extProc: first[1].extProc,
    hotel: ports.upstream,
    flight: ports.upstream,
    car: ports.upstream,
    trips: ports.upstream,
  };
  const config = YAML.parse(renderEnvoyConfig(base)) as Json;
  const resources = config['static_resources'] as Json;
  const listeners = resources['listeners'] as Json[];
  const clusters = resources['clusters'] as Json[];
  const ingress = named(listeners, 'ingress');
  const egress = named(listeners, 'egress');
  const sagameshCluster = named(clusters, 'sagamesh');
  const participantCluster = named(clusters, 'hotel');

  const outListeners: Json[] = [];
  // The original clusters stay (the egress still routes hotel/flight/car/trips to them).
  const outClusters: Json[] = clusters.filter((c) => c['name'] !== 'sagamesh');
  for (const [variant, p] of variants) {
    const l = clone(ingress);
    l['name'] = `ingress-${variant}`;
    setPort(l, p.ingress);
    const hcm = hcmOf(l);
    (hcm as { stat_prefix: string }).stat_prefix = `ingress_${variant}`;
    const extProc = named(hcm['http_filters'] as Json[], EXT_PROC);
    ((extProc['typed_config'] as Json)['grpc_service'] as Json)['envoy_grpc'] = {
      cluster_name: `sagamesh-${variant}`,
    };
    outListeners.push(l);
    const c = clone(sagameshCluster);
    setEndpointPort(c, p.extProc, `sagamesh-${variant}`);
    outClusters.push(c);
  }

  const plain = clone(ingress);
  plain['name'] = 'ingress-plain';
  setPort(plain, ports.plainIngress);
  const plainHcm = hcmOf(plain);
  plainHcm['stat_prefix'] = 'ingress_plain';
  plainHcm['http_filters'] = (plainHcm['http_filters'] as Json[]).filter((f) => f['name'] !== EXT_PROC);
  const plainRoutes = plainHcm['route_config'] as { virtual_hosts: { routes: Json[] }[] };
  for (const vh of plainRoutes.virtual_hosts) for (const r of vh.routes) delete r['typed_per_filter_config'];
  outListeners.push(plain);

  const egressHcm = hcmOf(egress);
  const routeConfig = egressHcm['route_config'] as { virtual_hosts: Json[] };
  const prefixRoutes: Json[] = [];
  for (const [name, port] of Object.entries(ports.participants)) {
    routeConfig.virtual_hosts.push({
      name,
      domains: [name, `${name}:*`],
      routes: [{ match: { prefix: '/' }, route: { cluster: name, timeout: '0s' } }],
    });
    prefixRoutes.push({
      match: { prefix: `/${name}/` },
      route: { cluster: name, timeout: '0s', prefix_rewrite: '/' },
    });
    const c = clone(participantCluster);
    setEndpointPort(c, port, name);
    outClusters.push(c);
  }
  routeConfig.virtual_hosts.push({ name: 'by-path', domains: ['*'], routes: prefixRoutes });
  outListeners.push(egress);

  for (const l of outListeners) removeAccessLogs(l);
  resources['listeners'] = outListeners;
  resources['clusters'] = outClusters;
  return YAML.stringify(config, { lineWidth: 0 });
}
