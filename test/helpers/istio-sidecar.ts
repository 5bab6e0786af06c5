/**
 * Istio's own translation for the trips pod's sidecar, run offline by tools/istio-translate
 * (istio.io/istio pinned in its go.mod; built by scripts/ci/install-translators.sh):
 *  - istio-agent's bootstrap: its ProxyConfig (mesh defaults + the pod's `proxy.istio.io/config`,
 *    read from downward-API files as in the pod), node metadata and bootstrap template, with the
 *    pod's `runtimeValues` in the static layer "global config" as istio-agent renders them;
 *  - istiod's xDS for that node: pilot's FakeDiscoveryServer (the harness Istio's own tests use)
 *    over a fake Kubernetes API holding the rendered objects plus what a cluster adds
 *    (test/helpers/cluster-state.ts), with the EnvoyFilter, VirtualServices and AuthorizationPolicy
 *    in its config store.
 *
 * istiod's settings, as an operator sets them in istiod's environment (Helm `pilot.env`), to keep
 * out the Istio-only extensions upstream Envoy lacks:
 *  - PILOT_ENABLE_METADATA_EXCHANGE=false: no `istio.metadata_exchange` filters (peer metadata for
 *    Istio's telemetry);
 *  - PILOT_ENABLE_ALPN_FILTER=false: no `istio.alpn` filter (it sets the ALPN Istio's mTLS peers
 *    use to sniff the protocol).
 * Istio's stats filters are not generated because the mesh config has no default metrics provider
 * (an install with `telemetry.enabled: false`); mesh.DefaultMeshConfig() is otherwise used as is.
 *
 * sidecarRunConfig turns the output into one Envoy bootstrap on loopback; every change is recorded
 * in `rewrites` (the test compares the list with the expected one).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { AddressMap, Json, RunConfig } from './xds-static';
import {
  clone,
  deleteField,
  field,
  inlineRoutes,
  isJson,
  mapAddresses,
  setField,
  setLoopbackSocket,
  socketOf,
  staticClusters,
  walk,
} from './xds-static';
import { istioBootstrapTemplate, runTranslator, toYaml } from './translators';

/** istiod's environment for the translation (see the file comment). */
export const ISTIOD_ENV: Readonly<Record<string, string>> = Object.freeze({
  PILOT_ENABLE_METADATA_EXCHANGE: 'false',
  PILOT_ENABLE_ALPN_FILTER: 'false',
});

/**
 * The mesh config (the `mesh` key of Istio's ConfigMap; read by istiod and istio-agent) the test
 * translates with: Istio's defaults plus two settings that only make the sidecar observable, as an
 * operator would for debugging, and change nothing on the request path —
 *  - an access log (meshConfig.accessLogFile/Encoding/Format) with the fields sagamesh returns as
 *    dynamic metadata (the EnvoyFilter's metadata_options lets them through);
 *  - proxyStatsMatcher inclusions for the sagamesh cluster and the inbound ext_proc filter: Istio's
 *    default stats matcher keeps every cluster's and filter's stats out of Envoy's stats store.
 */
export const TEST_MESH_CONFIG = `accessLogFile: /dev/stdout
accessLogEncoding: JSON
accessLogFormat: '{"method":"%REQ(:METHOD)%","path":"%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%","response_code":"%RESPONSE_CODE%","saga_id":"%DYNAMIC_METADATA(sagamesh:saga_id)%","saga":"%DYNAMIC_METADATA(sagamesh:saga)%","saga_outcome":"%DYNAMIC_METADATA(sagamesh:outcome)%"}'
defaultConfig:
  proxyStatsMatcher:
    inclusionPrefixes: ['cluster.sagamesh.', 'http.inbound_0.0.0.0_8080;.ext_proc.']
`;

export interface SidecarXds {
  /** What istio-agent writes as the sidecar's bootstrap (snake_case JSON, from its template). */
  readonly bootstrap: Json;
  readonly listeners: Json[];
  readonly clusters: Json[];
  readonly routes: Json[];
  readonly endpoints: Json[];
  /** The proxy as istiod sees it: id, IPs, labels, ProxyConfig, Istio version. */
  readonly proxy: Json;
}

/**
 * Runs tools/istio-translate on `objects` (Kubernetes objects and Istio configs) for `pod`, with
 * istiod's environment `env` (default ISTIOD_ENV).
 */
export function istioTranslate(
  objects: readonly unknown[],
  pod: string,
  env: Readonly<Record<string, string>> = ISTIOD_ENV,
  meshConfig = TEST_MESH_CONFIG,
): SidecarXds {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sagamesh-istio-translate-'));
  try {
    const input = path.join(dir, 'objects.yaml');
    const output = path.join(dir, 'xds.json');
    const mesh = path.join(dir, 'mesh.yaml');
    fs.writeFileSync(input, toYaml(objects));
    fs.writeFileSync(mesh, meshConfig);
    runTranslator(
      'istio-translate',
      [
        ...['--objects', input, '--pod', pod, '--mesh', mesh],
        ...['--bootstrap-template', istioBootstrapTemplate(), '--out', output],
      ],
      env,
    );
    return JSON.parse(fs.readFileSync(output, 'utf8')) as SidecarXds;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export interface SidecarPorts {
  /** Where the virtual inbound listener (15006) listens here: what the test sends to. */
  readonly inbound: number;
  /** Where the outbound port-80 listener listens here: sagamesh's egress URL. */
  readonly outbound80: number;
  readonly admin: number;
  /** Where the app (the pod's `inbound|<port>||` cluster) runs here. */
  readonly app: number;
  /** The app container's port (what Istio's inbound filter chains match). */
  readonly appContainerPort: number;
  /** Pod-local loopback port → the port used for it here (127.0.0.1:50051 → sagamesh's). */
  readonly podLoopback: Readonly<Record<number, number>>;
  /** Pod IP → where that pod's workload runs here (port by container port); absent: not run. */
  readonly pods: Readonly<Record<string, Readonly<Record<number, number>>>>;
}

/** Whether a config names istio-agent's SDS server (the `sds-grpc` cluster). */
function usesAgentSds(node: unknown): boolean {
  for (const { obj } of walk(node)) {
    const envoyGrpc = field(obj, 'envoy_grpc');
    if (isJson(envoyGrpc) && field(envoyGrpc, 'cluster_name') === 'sds-grpc') return true;
  }
  return false;
}

/** The agent's bootstrap with istiod's xDS in its static_resources, on loopback. */
export function sidecarRunConfig(xds: SidecarXds, ports: SidecarPorts): RunConfig {
  const rewrites: string[] = [];
  const bootstrap = clone(xds.bootstrap);

  const admin = field(bootstrap, 'admin') as Json;
  const adminSocket = socketOf(admin);
  setLoopbackSocket(admin, ports.admin);
  rewrites.push(`admin ${adminSocket.address}:${adminSocket.port} → a free loopback port`);

  if (field(bootstrap, 'dynamic_resources') === undefined)
    throw new Error('istio bootstrap: no dynamic_resources');
  deleteField(bootstrap, 'dynamic_resources');
  rewrites.push('dynamic_resources (ADS through istio-agent) removed: istiod`s xDS is given statically');

  // Pod-local addresses: the admin (prometheus_stats), istio-agent's status port (not run here),
  // sagamesh's gRPC port (the EnvoyFilter's cluster); pod IPs: the workloads run here.
  const map: AddressMap = (address, port) => {
    if (address === '127.0.0.1' || address === 'localhost') {
      if (port === adminSocket.port) return ports.admin;
      if (port === 15020) return null; // istio-agent's status server
      if (port === ports.appContainerPort) return ports.app; // the app, in the pod's network
      return ports.podLoopback[port];
    }
    const pod = ports.pods[address];
    if (pod === undefined) return null; // a workload not run here (etcd): no endpoint
    return pod[port];
  };

  const resources = field(bootstrap, 'static_resources') as Json;
  const bootClusters = ((field(resources, 'clusters') as Json[] | undefined) ?? []).filter((c) => {
    const name = String(c['name']);
    if (name === 'xds-grpc' || name === 'sds-grpc') {
      rewrites.push(
        `cluster ${name} (istio-agent's ${name === 'xds-grpc' ? 'xDS proxy' : 'SDS server'}, a UDS) removed: istio-agent is not run`,
      );
      return false;
    }
    return true;
  });
  for (const c of bootClusters) {
    if (c['name'] === 'agent')
      rewrites.push('cluster agent: istio-agent`s status port 15020 has no endpoint (not run)');
  }
  const bootListeners = (field(resources, 'listeners') as Json[] | undefined) ?? [];
  for (const l of bootListeners) {
    const s = socketOf(l);
    setLoopbackSocket(l, 0);
    rewrites.push(`listener ${String(l['name'])}: ${s.address}:${s.port} → 127.0.0.1, any free port`);
  }

  const listeners = xds.listeners.map(clone);
  for (const l of listeners) {
    const name = String(l['name']);
    const s = socketOf(l);
    if (name === 'virtualInbound') {
      // No iptables: the test connects to the listener itself, so the destination it sees is the
      // listener's own address, not the pod IP and app port; the chains for the app port match
      // this port instead.
      setLoopbackSocket(l, ports.inbound);
      rewrites.push(`listener virtualInbound: ${s.address}:${s.port} → the loopback port the test sends to`);
      const chains = (field(l, 'filter_chains') as Json[]).filter((fc) => {
        if (!usesAgentSds(fc)) return true;
        rewrites.push(
          `listener virtualInbound: chain ${String(fc['name'])} ${JSON.stringify(field(fc, 'filter_chain_match'))} removed: Istio mTLS with certificates from istio-agent's SDS (not run; no client here speaks it)`,
        );
        return false;
      });
      for (const fc of chains) {
        const match = field(fc, 'filter_chain_match');
        if (isJson(match) && field(match, 'destination_port') === ports.appContainerPort) {
          setField(match, 'destination_port', ports.inbound);
          rewrites.push(
            `listener virtualInbound: chain ${String(fc['name'])} destination_port ${ports.appContainerPort} → the listener's port`,
          );
        }
      }
      setField(l, 'filter_chains', chains);
    } else if (name === '0.0.0.0_80') {
      // No iptables capture and original-dst hand-off from virtualOutbound: sagamesh's egress
      // connects to this listener directly.
      setLoopbackSocket(l, ports.outbound80);
      deleteField(l, 'bind_to_port');
      rewrites.push(
        `listener 0.0.0.0_80: ${s.address}:${s.port} (bind_to_port false) → bound to sagamesh's egress port`,
      );
    } else if (name === 'virtualOutbound') {
      setLoopbackSocket(l, 0);
      rewrites.push(
        `listener virtualOutbound: ${s.address}:${s.port} → 127.0.0.1, any free port (nothing is captured here)`,
      );
    } else if (field(l, 'bind_to_port') !== false) {
      throw new Error(`listener ${name} binds ${s.address}:${s.port}: not expected in a sidecar`);
    }
    if (usesAgentSds(l)) throw new Error(`listener ${name} still uses istio-agent's SDS`);
  }
  const inlined = inlineRoutes(listeners, xds.routes);
  if (inlined > 0) rewrites.push(`RDS → the pushed routes inlined (${inlined})`);

  const clusters = xds.clusters.map((c) => {
    const cluster = clone(c);
    const name = String(cluster['name']);
    const matches = field(cluster, 'transport_socket_matches') as Json[] | undefined;
    if (matches) {
      const kept = matches.filter((m) => !usesAgentSds(m));
      if (kept.length !== matches.length) {
        setField(cluster, 'transport_socket_matches', kept);
        rewrites.push(
          `cluster ${name}: transport socket match tlsMode-istio removed (Istio mTLS, certificates from istio-agent's SDS)`,
        );
      }
    }
    if (name === `inbound|${ports.appContainerPort}||`) {
      // An ORIGINAL_DST cluster: in the pod it connects to the pod IP and app port the client
      // addressed; here the original destination is the listener itself.
      setField(cluster, 'type', 'STATIC');
      deleteField(cluster, 'lb_policy');
      deleteField(cluster, 'original_dst_lb_config');
      setField(cluster, 'load_assignment', {
        cluster_name: name,
        endpoints: [
          {
            lb_endpoints: [
              {
                endpoint: {
                  address: { socket_address: { address: '127.0.0.1', port_value: ports.appContainerPort } },
                },
              },
            ],
          },
        ],
      });
      rewrites.push(`cluster ${name}: ORIGINAL_DST → STATIC, the app's loopback port`);
    }
    if (usesAgentSds(cluster)) throw new Error(`cluster ${name} still uses istio-agent's SDS`);
    return cluster;
  });
  const eds = clusters.filter((c) => field(c, 'type') === 'EDS').length;
  if (eds > 0) rewrites.push(`EDS → the pushed endpoints as static load assignments (${eds} clusters)`);
  const seen = new Set<string>();
  const recordingMap: AddressMap = (address, port) => {
    const mapped = map(address, port);
    const key = `${address}:${port}`;
    if (!seen.has(key) && address !== '127.0.0.1') {
      seen.add(key);
      rewrites.push(
        mapped === null
          ? `endpoint ${key}: not run here, dropped`
          : `endpoint ${key} → its workload's loopback port`,
      );
    }
    return mapped;
  };
  const staticOnes = [
    ...staticClusters(bootClusters, [], recordingMap),
    ...staticClusters(clusters, xds.endpoints, recordingMap),
  ];
  const sagamesh = staticOnes.find((c) => c['name'] === 'sagamesh');
  if (sagamesh)
    rewrites.push('cluster sagamesh (the EnvoyFilter`s): 127.0.0.1:50051 → sagamesh`s loopback port');
  mapAddresses(admin, () => ports.admin, 'admin');

  setField(bootstrap, 'static_resources', {
    ...resources,
    listeners: [...bootListeners, ...listeners],
    clusters: staticOnes,
  });
  return { bootstrap, rewrites };
}
