/**
 * An Envoy bootstrap that is a loopback model of the Envoy Gateway proxy in front of the `trips`
 * HTTPRoute (deploy/kubernetes/overlays/envoy-gateway), in two halves like k8s-bootstrap.ts:
 *
 *  1. What Envoy Gateway generates anyway (stand-ins, written here): its default bootstrap's static
 *     runtime layer (`global_config`, internal/xds/bootstrap/bootstrap.yaml.tpl of v1.9.1, the
 *     version whose CRDs the manifests are validated against), and an HTTP listener whose one route
 *     goes to the app.
 *  2. What the overlay's manifests add, translated the way Envoy Gateway v1.9.1 translates them:
 *     the `EnvoyProxy`'s bootstrap (`type: Merge`: internal/xds/bootstrap/util.go mergeBootstrap,
 *     a protobuf merge, so `layered_runtime.layers` are appended to the default ones) and the
 *     `EnvoyExtensionPolicy`'s ext_proc filter (internal/xds/translator/extproc.go extProcConfig,
 *     buildProcessingMode, buildNonRouteRetryPolicy) with an HTTP/2 cluster for its backend, which
 *     gets the extProc's `backendSettings.circuitBreaker` (gatewayExtProcCircuitBreakers).
 *     Only the fields the manifests use are translated; any other field fails the build, so a new
 *     setting in the manifests cannot go untested.
 */
import YAML from 'yaml';
import type { K8sObject } from './k8s';
import { specOf } from './k8s';

type Json = Record<string, unknown>;

/** Envoy Gateway v1.9.1's default static layer (bootstrap.yaml.tpl). */
export const ENVOY_GATEWAY_DEFAULT_RUNTIME: Json = Object.freeze({
  layers: [
    {
      name: 'global_config',
      static_layer: {
        'envoy.reloadable_features.oauth2_legacy_cbc_decrypt_compat': false,
        'envoy.reloadable_features.oauth2_use_gcm_encryption': true,
        're2.max_program_size.error_level': 4294967295,
        're2.max_program_size.warn_level': 1000,
      },
    },
  ],
});

/** Envoy Gateway's listener path handling (the translator's defaults, see gatewayBootstrap). */
export const ENVOY_GATEWAY_PATH_SETTINGS: Json = Object.freeze({
  normalize_path: true,
  merge_slashes: true,
  path_with_escaped_slashes_action: 'UNESCAPE_AND_REDIRECT',
});

/**
 * Envoy Gateway's fixed timeout on the ext_proc grpc_service (defaultExtServiceRequestTimeout, not
 * configurable). It does not bound an ext_proc stream: Envoy's ext_proc client opens the stream with
 * StreamOptions that carry no timeout (client_impl.cc startStream), and a gRPC stream's only timeout
 * is that option; only filters that pass grpc_service.timeout themselves (ext_authz, …) use it.
 * test/integration/k8s-envoy.test.ts holds an answer past it with the real Envoy.
 */
const EXT_SERVICE_TIMEOUT = '10s';

interface ProxyBootstrap {
  type?: string;
  value?: string;
}

function clone<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

function onlyKeys(obj: object, allowed: readonly string[], where: string): void {
  const extra = Object.keys(obj).filter((k) => !allowed.includes(k));
  if (extra.length > 0) {
    throw new Error(
      `${where}: ${extra.join(', ')} not modelled by test/helpers/k8s-gateway-bootstrap.ts: ` +
        'extend it so the new setting is tested too',
    );
  }
}

/**
 * The layered runtime of the gateway's Envoy: Envoy Gateway's default, merged with the EnvoyProxy's
 * `spec.bootstrap` the way `type: Merge` does (repeated `layers` appended, in order).
 */
export function gatewayLayeredRuntime(envoyProxy: K8sObject): Json {
  const runtime = bootstrapOverride(envoyProxy)['layered_runtime'] as { layers?: Json[] };
  onlyKeys(runtime, ['layers'], 'EnvoyProxy bootstrap layered_runtime');
  const merged = clone(ENVOY_GATEWAY_DEFAULT_RUNTIME) as { layers: Json[] };
  merged.layers.push(...clone(runtime.layers ?? []));
  return merged;
}

/** The EnvoyProxy's `spec.bootstrap` (type Merge), parsed; only the keys the model merges. */
function bootstrapOverride(envoyProxy: K8sObject): Json {
  const bootstrap = specOf<{ bootstrap?: ProxyBootstrap }>(envoyProxy).bootstrap;
  if (!bootstrap) throw new Error(`EnvoyProxy ${envoyProxy.metadata.name} has no spec.bootstrap`);
  if (bootstrap.type !== 'Merge')
    throw new Error(`EnvoyProxy bootstrap type ${bootstrap.type} is not modelled`);
  const override = YAML.parse(bootstrap.value ?? '') as Json;
  onlyKeys(override, ['layered_runtime', 'grpc_async_client_manager_config'], 'EnvoyProxy bootstrap');
  return override;
}

/**
 * The gateway's gRPC client cache settings: Envoy Gateway's default bootstrap has none, so the
 * Merge leaves the EnvoyProxy's (a message: merged field by field, here one field). {} if unset.
 */
export function gatewayGrpcClientCache(envoyProxy: K8sObject): Json {
  const cache = bootstrapOverride(envoyProxy)['grpc_async_client_manager_config'] as Json | undefined;
  if (cache)
    onlyKeys(cache, ['max_cached_entry_idle_duration'], 'EnvoyProxy grpc_async_client_manager_config');
  return cache ?? {};
}

/** `backendSettings.circuitBreaker` of an extProc entry (api/v1alpha1/circuitbreaker_types.go). */
export interface CircuitBreakerSettings {
  maxConnections?: number;
  maxPendingRequests?: number;
  maxParallelRequests?: number;
  maxParallelRetries?: number;
}

interface ExtProcEntry {
  backendRefs: { name: string; port: number }[];
  backendSettings?: {
    retry?: {
      numRetries?: number;
      perRetry?: { backOff?: { baseInterval?: string; maxInterval?: string } };
      retryOn?: { triggers?: string[] };
    };
    circuitBreaker?: CircuitBreakerSettings;
  };
  failOpen?: boolean;
  statusOnError?: number;
  messageTimeout?: string;
  processingMode?: {
    request?: { body?: string };
    response?: { body?: string };
    allowModeOverride?: boolean;
  };
  metadata?: { writableNamespaces?: string[] };
}

/** A Gateway API duration (`1s`, `500ms`, `1m`) in whole seconds, rounded down; 0 when unset. */
function wholeSeconds(duration: string | undefined): number {
  if (duration === undefined) return 0;
  const m = /^(\d+)(ms|s|m|h)$/.exec(duration);
  if (!m) throw new Error(`duration ${duration} is not modelled`);
  const ms = Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
  return Math.floor(ms / 1000);
}

const BODY_MODES: Record<string, string> = {
  Buffered: 'BUFFERED',
  BufferedPartial: 'BUFFERED_PARTIAL',
  Streamed: 'STREAMED',
};

/** The ext_proc HTTP filter Envoy Gateway builds from one `extProc` entry of the policy. */
export function gatewayExtProcFilter(extProc: ExtProcEntry, clusterName: string, namespace: string): Json {
  onlyKeys(
    extProc,
    [
      'backendRefs',
      'backendSettings',
      'failOpen',
      'statusOnError',
      'messageTimeout',
      'processingMode',
      'metadata',
    ],
    'EnvoyExtensionPolicy extProc',
  );
  // :authority is the backend's `<name>.<namespace>:<port>` (translateEnvoyExtensionPolicyExtProc).
  const backend = extProc.backendRefs[0];
  const grpcService: Json = {
    envoy_grpc: { cluster_name: clusterName, authority: `${backend?.name}.${namespace}:${backend?.port}` },
    timeout: EXT_SERVICE_TIMEOUT,
  };
  if (extProc.backendSettings) {
    // circuitBreaker goes to the cluster (gatewayExtProcCircuitBreakers), not to the filter.
    onlyKeys(extProc.backendSettings, ['retry', 'circuitBreaker'], 'extProc backendSettings');
    const retry = extProc.backendSettings.retry;
    if (retry) {
      onlyKeys(retry, ['numRetries', 'perRetry', 'retryOn'], 'extProc backendSettings.retry');
      onlyKeys(retry.retryOn ?? {}, ['triggers'], 'extProc backendSettings.retry.retryOn');
      onlyKeys(retry.perRetry ?? {}, ['backOff'], 'extProc backendSettings.retry.perRetry');
      const backOff = retry.perRetry?.backOff;
      grpcService['retry_policy'] = {
        // Envoy Gateway's default when no trigger is given (retryDefaultRetryOn).
        retry_on:
          retry.retryOn?.triggers?.join(',') ??
          'connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes',
        num_retries: retry.numRetries ?? 2,
        // buildNonRouteRetryPolicy keeps whole seconds only (`int64(....Seconds())`).
        ...(backOff
          ? {
              retry_back_off: {
                base_interval: `${wholeSeconds(backOff.baseInterval)}s`,
                max_interval: `${wholeSeconds(backOff.maxInterval)}s`,
              },
            }
          : {}),
      };
    }
  }
  const mode = extProc.processingMode ?? {};
  onlyKeys(mode, ['request', 'response', 'allowModeOverride'], 'extProc processingMode');
  const bodyMode = (body: string | undefined): string => {
    if (body === undefined) return 'NONE';
    const mapped = BODY_MODES[body];
    if (!mapped) throw new Error(`extProc body mode ${body} is not modelled`);
    return mapped;
  };
  const filter: Json = {
    grpc_service: grpcService,
    failure_mode_allow: extProc.failOpen ?? false,
    ...(extProc.statusOnError !== undefined ? { status_on_error: { code: extProc.statusOnError } } : {}),
    processing_mode: {
      request_header_mode: mode.request ? 'SEND' : 'SKIP',
      response_header_mode: mode.response ? 'SEND' : 'SKIP',
      request_body_mode: bodyMode(mode.request?.body),
      response_body_mode: bodyMode(mode.response?.body),
      request_trailer_mode: 'SKIP',
      response_trailer_mode: 'SKIP',
    },
    allow_mode_override: mode.allowModeOverride ?? false,
  };
  if (extProc.messageTimeout !== undefined) filter['message_timeout'] = extProc.messageTimeout;
  if (extProc.metadata) {
    onlyKeys(extProc.metadata, ['writableNamespaces'], 'extProc metadata');
    filter['metadata_options'] = {
      receiving_namespaces: { untyped: extProc.metadata.writableNamespaces ?? [] },
    };
  }
  return {
    name: 'envoy.filters.http.ext_proc',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor',
      ...filter,
    },
  };
}

/** The CRD's default for every circuit-breaker field it has (`+kubebuilder:default=1024`). */
const CRD_CIRCUIT_BREAKER_DEFAULT = 1024;

/**
 * The `circuit_breakers` of the ext_proc backend's cluster. Envoy Gateway passes an extProc's
 * `backendSettings` through translateTrafficFeatures (internal/gatewayapi/clustersettings.go,
 * buildCircuitBreaker) to createExtServiceXDSCluster, and every cluster it builds gets
 * buildXdsClusterCircuitBreaker (internal/xds/translator/cluster.go): one DEFAULT-priority
 * threshold, `max_retries` 1024 unless `maxParallelRetries` is set, the other limits only when set
 * (else Envoy's own default, 1024). When `circuitBreaker` is present at all, the apiserver fills its
 * unset fields with the CRD's default, 1024. No HIGH-priority threshold is ever generated.
 */
export function gatewayExtProcCircuitBreakers(extProc: ExtProcEntry): Json {
  const cb = extProc.backendSettings?.circuitBreaker;
  const threshold: Json = { priority: 'DEFAULT', max_retries: CRD_CIRCUIT_BREAKER_DEFAULT };
  if (cb) {
    onlyKeys(
      cb,
      ['maxConnections', 'maxPendingRequests', 'maxParallelRequests', 'maxParallelRetries'],
      'extProc backendSettings.circuitBreaker',
    );
    const or1024 = (v: number | undefined) => v ?? CRD_CIRCUIT_BREAKER_DEFAULT;
    threshold['max_connections'] = or1024(cb.maxConnections);
    threshold['max_pending_requests'] = or1024(cb.maxPendingRequests);
    threshold['max_requests'] = or1024(cb.maxParallelRequests);
    threshold['max_retries'] = or1024(cb.maxParallelRetries);
  }
  return { thresholds: [threshold] };
}

export interface GatewayModel {
  readonly listenerPort: number;
  readonly adminPort: number;
  /** Where the route's backend (the trips app) runs here. */
  readonly appPort: number;
  /** Where the ext_proc backend (sagamesh) runs here. */
  readonly extProcPort: number;
}

function staticCluster(name: string, port: number, http2: boolean, extra: Json = {}): Json {
  return {
    name,
    type: 'STATIC',
    connect_timeout: '1s',
    ...extra,
    ...(http2
      ? {
          typed_extension_protocol_options: {
            'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
              '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
              explicit_http_config: { http2_protocol_options: {} },
            },
          },
        }
      : {}),
    load_assignment: {
      cluster_name: name,
      endpoints: [
        {
          lb_endpoints: [
            { endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } },
          ],
        },
      ],
    },
  };
}

/**
 * The route timeout of the HTTPRoute's one rule, as Envoy Gateway v1.9.1 sets it
 * (internal/gatewayapi/route.go processRouteTimeout, internal/xds/translator/route.go): the rule's
 * `timeouts.request`, or none at all — Envoy's own default, 15 s — when the rule has no timeouts.
 */
export function gatewayRouteTimeout(route: K8sObject): string | undefined {
  const rules = specOf<{ rules?: { timeouts?: Record<string, string> }[] }>(route).rules ?? [];
  if (rules.length !== 1) throw new Error(`HTTPRoute: ${rules.length} rules, 1 modelled`);
  const timeouts = rules[0]?.timeouts;
  if (!timeouts) return undefined;
  onlyKeys(timeouts, ['request'], 'HTTPRoute rules[0].timeouts');
  return timeouts['request'];
}

/**
 * The gateway's bootstrap (as an object): the stand-ins plus the EnvoyProxy, the policy and the
 * HTTPRoute's route timeout.
 */
export function gatewayBootstrap(
  envoyProxy: K8sObject,
  policy: K8sObject,
  route: K8sObject,
  model: GatewayModel,
): Json {
  const timeout = gatewayRouteTimeout(route);
  const extProcs = specOf<{ extProc?: ExtProcEntry[] }>(policy).extProc ?? [];
  const extProc = extProcs[0];
  if (!extProc || extProcs.length !== 1)
    throw new Error(`EnvoyExtensionPolicy: ${extProcs.length} extProc entries, 1 modelled`);
  const backend = extProc.backendRefs[0];
  if (!backend || extProc.backendRefs.length !== 1)
    throw new Error('EnvoyExtensionPolicy: one backendRef modelled');
  // Envoy Gateway's cluster name for the policy's backend.
  const extProcCluster = `envoyextensionpolicy/${policy.metadata.namespace ?? 'default'}/${policy.metadata.name}/extproc/0`;
  const routeCluster = 'httproute/trips/rule/0';
  return {
    admin: { address: { socket_address: { address: '127.0.0.1', port_value: model.adminPort } } },
    layered_runtime: gatewayLayeredRuntime(envoyProxy),
    grpc_async_client_manager_config: gatewayGrpcClientCache(envoyProxy),
    static_resources: {
      listeners: [
        {
          name: 'sagamesh-edge/http',
          address: { socket_address: { address: '127.0.0.1', port_value: model.listenerPort } },
          filter_chains: [
            {
              filters: [
                {
                  name: 'envoy.filters.network.http_connection_manager',
                  typed_config: {
                    '@type':
                      'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
                    stat_prefix: 'http-80',
                    // Envoy Gateway's path handling for every HTTP listener without a
                    // ClientTrafficPolicy: gatewayapi's PathSettings{MergeSlashes: true,
                    // EscapedSlashesAction: UnescapeAndRedirect}, and the xds translator's NormalizePath.
                    ...ENVOY_GATEWAY_PATH_SETTINGS,
                    http_filters: [
                      gatewayExtProcFilter(extProc, extProcCluster, policy.metadata.namespace ?? 'default'),
                      {
                        name: 'envoy.filters.http.router',
                        typed_config: {
                          '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router',
                        },
                      },
                    ],
                    route_config: {
                      name: 'sagamesh-edge/http',
                      virtual_hosts: [
                        {
                          name: 'trips',
                          domains: ['*'],
                          routes: [
                            {
                              match: { prefix: '/' },
                              route: { cluster: routeCluster, ...(timeout !== undefined ? { timeout } : {}) },
                            },
                          ],
                        },
                      ],
                    },
                  },
                },
              ],
            },
          ],
        },
      ],
      clusters: [
        staticCluster(routeCluster, model.appPort, false),
        staticCluster(extProcCluster, model.extProcPort, true, {
          circuit_breakers: gatewayExtProcCircuitBreakers(extProc),
        }),
      ],
    },
  };
}

export function gatewayBootstrapYaml(
  envoyProxy: K8sObject,
  policy: K8sObject,
  route: K8sObject,
  model: GatewayModel,
): string {
  return YAML.stringify(gatewayBootstrap(envoyProxy, policy, route, model), { lineWidth: 0 });
}
