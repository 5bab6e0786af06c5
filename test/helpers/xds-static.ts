/**
 * What a control plane would push over xDS, given to Envoy statically instead: the translators
 * (istiod's and Envoy Gateway's, run offline by test/helpers/istio-translation.ts and
 * test/helpers/egctl-gateway.ts) print listeners, clusters, routes and endpoints as protobuf JSON;
 * here they become one bootstrap's `static_resources`, with each change a loopback host needs made
 * explicitly and recorded:
 *  - RDS → the pushed RouteConfiguration inlined in its connection manager (same message);
 *  - EDS → the pushed ClusterLoadAssignment as the cluster's `load_assignment` (type STATIC);
 *  - an address of the cluster (a ClusterIP, a pod IP) → a loopback port, through an explicit map;
 *    an address that the map does not know fails the build.
 * Both protobuf JSON spellings are read (lowerCamelCase from protojson, snake_case from templates).
 */
export type Json = Record<string, unknown>;

export function isJson(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function camel(snake: string): string {
  return snake.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** A field by its proto name, in either JSON spelling. */
export function field(obj: Json, snake: string): unknown {
  return obj[snake] ?? obj[camel(snake)];
}

/** Sets a field by its proto name, replacing either spelling. */
export function setField(obj: Json, snake: string, value: unknown): void {
  delete obj[camel(snake)];
  delete obj[snake];
  obj[snake] = value;
}

export function deleteField(obj: Json, snake: string): void {
  delete obj[camel(snake)];
  delete obj[snake];
}

export function clone<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

/** Every object in `node` (depth first), with its parent key. */
export function* walk(node: unknown, key = ''): Generator<{ obj: Json; key: string }> {
  if (Array.isArray(node)) {
    for (const item of node) yield* walk(item, key);
    return;
  }
  if (!isJson(node)) return;
  yield { obj: node, key };
  for (const [k, v] of Object.entries(node)) yield* walk(v, k);
}

export const HCM_TYPE =
  'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';

/** Every HTTP connection manager config in a listener (its filter chains and default chain). */
export function connectionManagers(listener: Json): Json[] {
  const out: Json[] = [];
  for (const { obj } of walk(listener)) if (obj['@type'] === HCM_TYPE) out.push(obj);
  return out;
}

/**
 * Replaces every `rds` of the listeners' connection managers by the pushed route of that name;
 * how many it replaced.
 */
export function inlineRoutes(listeners: readonly Json[], routes: readonly Json[]): number {
  let inlined = 0;
  const byName = new Map(routes.map((r) => [String(r['name']), r]));
  for (const listener of listeners) {
    for (const hcm of connectionManagers(listener)) {
      const rds = field(hcm, 'rds');
      if (!isJson(rds)) continue;
      const name = String(field(rds, 'route_config_name'));
      const route = byName.get(name);
      if (!route) throw new Error(`listener ${String(listener['name'])}: no pushed route ${name}`);
      deleteField(hcm, 'rds');
      setField(hcm, 'route_config', clone(route));
      inlined++;
    }
  }
  return inlined;
}

/**
 * A socket address of the translated config → the loopback port where it runs here; `null`: that
 * workload is not run here (its endpoint is dropped); `undefined`: unknown (the build fails).
 */
export type AddressMap = (address: string, port: number) => number | null | undefined;

/** Rewrites every socket address under `node` through `map` to 127.0.0.1; unknown ones throw. */
export function mapAddresses(node: unknown, map: AddressMap, where: string): void {
  for (const { obj } of walk(node)) {
    const sa = field(obj, 'socket_address');
    if (!isJson(sa)) continue;
    const address = String(sa['address']);
    const port = Number(field(sa, 'port_value'));
    const mapped = map(address, port);
    if (mapped === undefined || mapped === null)
      throw new Error(`${where}: ${address}:${port} has no loopback port here`);
    setField(obj, 'socket_address', { address: '127.0.0.1', port_value: mapped });
  }
}

/** Drops the endpoints of a load assignment whose address `map` says is not run here (null). */
function dropAbsent(cla: Json, map: AddressMap): void {
  for (const locality of (field(cla, 'endpoints') as Json[] | undefined) ?? []) {
    const lbs = (field(locality, 'lb_endpoints') as Json[] | undefined) ?? [];
    setField(
      locality,
      'lb_endpoints',
      lbs.filter((lb) => {
        for (const { obj } of walk(lb)) {
          const sa = field(obj, 'socket_address');
          if (isJson(sa) && map(String(sa['address']), Number(field(sa, 'port_value'))) === null)
            return false;
        }
        return true;
      }),
    );
  }
}

/**
 * The pushed clusters as static ones: an EDS cluster gets its pushed ClusterLoadAssignment (type
 * STATIC; a cluster without one gets none, as Envoy has none until EDS answers), and every address
 * goes through `map`.
 */
export function staticClusters(
  clusters: readonly Json[],
  endpoints: readonly Json[],
  map: AddressMap,
): Json[] {
  const byName = new Map(endpoints.map((e) => [String(field(e, 'cluster_name')), e]));
  return clusters.map((c) => {
    const cluster = clone(c);
    const name = String(cluster['name']);
    if (field(cluster, 'type') === 'EDS') {
      const serviceName = field(field(cluster, 'eds_cluster_config') as Json, 'service_name');
      const key = typeof serviceName === 'string' && serviceName !== '' ? serviceName : name;
      const cla = clone(byName.get(key) ?? { cluster_name: name, endpoints: [] });
      deleteField(cluster, 'eds_cluster_config');
      setField(cluster, 'type', 'STATIC');
      setField(cla, 'cluster_name', name);
      setField(cluster, 'load_assignment', cla);
    }
    const cla = field(cluster, 'load_assignment');
    if (isJson(cla)) dropAbsent(cla, map);
    mapAddresses(cla, map, `cluster ${name}`);
    return cluster;
  });
}

/** A translator's bootstrap made to run on one loopback host, and what was changed (port numbers left out). */
export interface RunConfig {
  readonly bootstrap: Json;
  readonly rewrites: string[];
}

/** A listener's or the admin's `address.socket_address`. */
export function socketOf(obj: Json): { address: string; port: number } {
  const sa = field(field(obj, 'address') as Json, 'socket_address') as Json;
  return { address: String(sa['address']), port: Number(field(sa, 'port_value')) };
}

/** Binds a listener or the admin to `127.0.0.1:port` (0: any free port). */
export function setLoopbackSocket(obj: Json, port: number): void {
  setField(obj, 'address', { socket_address: { address: '127.0.0.1', port_value: port } });
}
