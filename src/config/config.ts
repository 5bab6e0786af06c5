import os from 'node:os';
import path from 'node:path';
import { ERRORS, SagameshError } from '../errors';
import { MAX_DURATION_MS } from '../definition/duration';
import { DEFAULT_BODY_LIMITS } from '../json-limits';
import type { StoreConfig } from './store-url';
import { DEFAULT_STORE, parseStoreUrl } from './store-url';
import { Secret } from './secret';

/**
 * sagamesh's configuration: defaults, overridden by SAGAMESH_* environment variables, then by
 * flags. Validated once at boot with every problem reported together; the result is frozen.
 */
export interface Config {
  readonly sagasDir: string;
  /** `host:port` or `unix:/path` for the ext_proc gRPC server. */
  readonly grpcAddress: string;
  /** Where step calls go: Envoy's egress listener, or the pod's sidecar. */
  readonly egressUrl: string;
  /** Connections to the egress that step calls share; calls beyond them wait in line. */
  readonly egressConnections: number;
  /** How step calls reach the egress: HTTP/1.1 connections, or HTTP/2 streams over cleartext sessions. */
  readonly egressProtocol: EgressProtocol;
  readonly store: StoreConfig;
  /** Finished sagas are deleted from the log this long after they finished. */
  readonly retentionMs: number;
  /** A client Idempotency-Key is remembered this long. */
  readonly idempotencyRetentionMs: number;
  /** PostgreSQL: how long a saga stays owned by an instance that stopped renewing its lease. */
  readonly leaseTtlMs: number;
  /** Names this instance in the saga log (leases, recovery records); default: host and pid. */
  readonly instanceId: string;
  /** Dot paths into request bodies that never reach a log line (e.g. `card.number`). */
  readonly logRedact: readonly string[];
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** Longest saga deadline a definition may declare; keep below Envoy's ext_proc message_timeout. */
  readonly maxDeadlineMs: number;
  /** Longest a stream waits for a saga to settle before answering; below Envoy's message_timeout (65 s). */
  readonly answerBudgetMs: number;
  /** Load shedding: past this many sagas in flight, new saga requests get 503 OVERLOADED. */
  readonly maxInFlight: number;
  /** Largest saga request body sagamesh takes (Envoy's own limit may be lower); larger → 413. */
  readonly maxBodyBytes: number;
  /** Deepest nesting of a JSON body sagamesh parses: a saga request's (400) or a participant's answer. */
  readonly maxBodyDepth: number;
  /** Most array items plus object members in a saga request's JSON body (400 beyond). */
  readonly maxBodyValues: number;
  /** On SIGTERM: how long in-flight streams may take to finish. */
  readonly shutdownGraceMs: number;
  /** `host:port` of the admin HTTP server (health, metrics, sagas API, UI); port 0 picks a free one. */
  readonly adminAddress: string;
  /** Bearer token for the mutating admin endpoints; without it they are refused. Never logged. */
  readonly adminToken?: Secret;
  /** Saga contents (request, step responses) in the admin API and UI need the admin token. */
  readonly adminProtectContents: boolean;
  /** How long the definitions watcher waits for a burst of file events to settle before reloading. */
  readonly reloadDebounceMs: number;
}

export const EGRESS_PROTOCOLS = ['http1', 'h2c'] as const;
export type EgressProtocol = (typeof EGRESS_PROTOCOLS)[number];

export const DEFAULTS: Config = Object.freeze({
  sagasDir: './sagas',
  grpcAddress: '127.0.0.1:50051',
  egressUrl: 'http://127.0.0.1:10001',
  egressConnections: 1024,
  egressProtocol: 'http1',
  store: { kind: 'sqlite', file: './data/sagamesh.db', synchronous: 'full' } satisfies StoreConfig,
  retentionMs: 7 * 24 * 3_600_000,
  idempotencyRetentionMs: 24 * 3_600_000,
  leaseTtlMs: 10_000,
  instanceId: '',
  logRedact: [],
  logLevel: 'info',
  maxDeadlineMs: 60_000,
  answerBudgetMs: 63_000,
  maxInFlight: 20_000,
  maxBodyBytes: 65_536,
  maxBodyDepth: DEFAULT_BODY_LIMITS.maxDepth,
  maxBodyValues: DEFAULT_BODY_LIMITS.maxValues,
  shutdownGraceMs: 10_000,
  adminAddress: '127.0.0.1:9090',
  adminProtectContents: false,
  reloadDebounceMs: 200,
});

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** The environment variable behind each setting. */
export const ENV_VARS: Readonly<Record<keyof Config, string>> = Object.freeze({
  sagasDir: 'SAGAMESH_SAGAS_DIR',
  grpcAddress: 'SAGAMESH_GRPC_ADDR',
  egressUrl: 'SAGAMESH_EGRESS_URL',
  egressConnections: 'SAGAMESH_EGRESS_CONNECTIONS',
  egressProtocol: 'SAGAMESH_EGRESS_PROTOCOL',
  store: 'SAGAMESH_STORE',
  retentionMs: 'SAGAMESH_RETENTION_MS',
  idempotencyRetentionMs: 'SAGAMESH_IDEMPOTENCY_RETENTION_MS',
  leaseTtlMs: 'SAGAMESH_LEASE_TTL_MS',
  instanceId: 'SAGAMESH_INSTANCE_ID',
  logLevel: 'SAGAMESH_LOG_LEVEL',
  logRedact: 'SAGAMESH_LOG_REDACT',
  maxDeadlineMs: 'SAGAMESH_MAX_DEADLINE_MS',
  answerBudgetMs: 'SAGAMESH_ANSWER_BUDGET_MS',
  maxInFlight: 'SAGAMESH_MAX_IN_FLIGHT',
  maxBodyBytes: 'SAGAMESH_MAX_BODY_BYTES',
  maxBodyDepth: 'SAGAMESH_MAX_BODY_DEPTH',
  maxBodyValues: 'SAGAMESH_MAX_BODY_VALUES',
  shutdownGraceMs: 'SAGAMESH_SHUTDOWN_GRACE_MS',
  adminAddress: 'SAGAMESH_ADMIN_ADDR',
  adminToken: 'SAGAMESH_ADMIN_TOKEN',
  adminProtectContents: 'SAGAMESH_ADMIN_PROTECT_CONTENTS',
  reloadDebounceMs: 'SAGAMESH_RELOAD_DEBOUNCE_MS',
});

/**
 * The range of SAGAMESH_MAX_DEADLINE_MS (and of `sagamesh validate --max-deadline-ms`): up to the
 * longest duration a definition may hold, far inside what a Node timer can wait (2^31-1 ms).
 */
export const MAX_DEADLINE_MS_RANGE = Object.freeze({ min: 100, max: MAX_DURATION_MS });

/** Shortest admin token accepted: a guessable token is worse than none (which refuses). */
export const MIN_ADMIN_TOKEN_LENGTH = 16;

export type ConfigOverrides = Partial<Record<keyof Config, string | undefined>>;

export function loadConfig(env: NodeJS.ProcessEnv, flags: ConfigOverrides = {}, cwd = process.cwd()): Config {
  const problems: string[] = [];
  const raw = (key: keyof Config): string | undefined => flags[key] ?? env[ENV_VARS[key]];

  const int = (key: keyof Config, min: number, max: number): number => {
    const value = raw(key);
    if (value === undefined || value === '') return DEFAULTS[key] as number;
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) {
      problems.push(`${ENV_VARS[key]}=${value}: must be an integer from ${min} to ${max}`);
      return DEFAULTS[key] as number;
    }
    return n;
  };

  const grpcAddress = raw('grpcAddress') || DEFAULTS.grpcAddress;
  if (
    !/^unix:.+$/.test(grpcAddress) &&
    !/^[\w.-]+:\d{1,5}$/.test(grpcAddress) &&
    !/^\[[\da-f:]+\]:\d{1,5}$/i.test(grpcAddress)
  ) {
    problems.push(`${ENV_VARS.grpcAddress}=${grpcAddress}: must be host:port or unix:/path`);
  }

  const egressUrl = raw('egressUrl') || DEFAULTS.egressUrl;
  try {
    const u = new URL(egressUrl);
    if (u.protocol !== 'http:' || u.pathname !== '/') throw new Error('not an http origin');
  } catch {
    problems.push(`${ENV_VARS.egressUrl}=${egressUrl}: must be an http origin like http://127.0.0.1:10001`);
  }

  const egressConnections = int('egressConnections', 1, 65_536);
  const egressProtocolValue = raw('egressProtocol') || DEFAULTS.egressProtocol;
  const egressProtocol = EGRESS_PROTOCOLS.find((p) => p === egressProtocolValue);
  if (!egressProtocol) {
    problems.push(
      `${ENV_VARS.egressProtocol}=${egressProtocolValue}: must be one of ${EGRESS_PROTOCOLS.join(', ')}`,
    );
  }

  const storeValue = raw('store') || DEFAULT_STORE;
  const parsedStore = parseStoreUrl(storeValue, cwd);
  if ('problem' in parsedStore) {
    // The value may hold a password: name the variable, not the value.
    problems.push(`${ENV_VARS.store}: ${parsedStore.problem}`);
  }
  const store = 'problem' in parsedStore ? DEFAULTS.store : parsedStore;
  const retentionMs = int('retentionMs', 1000, 10 * 365 * 24 * 3_600_000);
  const idempotencyRetentionMs = int('idempotencyRetentionMs', 1000, 10 * 365 * 24 * 3_600_000);
  const leaseTtlMs = int('leaseTtlMs', 1000, 600_000);
  const instanceId = raw('instanceId') || `${os.hostname()}-${process.pid}`;

  const logLevel = raw('logLevel') || DEFAULTS.logLevel;
  const level = LOG_LEVELS.find((l) => l === logLevel);
  if (!level) problems.push(`${ENV_VARS.logLevel}=${logLevel}: must be one of ${LOG_LEVELS.join(', ')}`);

  const logRedact = (raw('logRedact') ?? '')
    .split(',')
    .map((f) => f.trim())
    .filter((f) => f.length > 0);
  for (const field of logRedact) {
    if (!/^(?:[A-Za-z_$][\w$]*|\*)(?:\.(?:[A-Za-z_$][\w$]*|\*))*$/.test(field)) {
      problems.push(
        `${ENV_VARS.logRedact}: "${field}" is not a dot path like card.number (segments may be *)`,
      );
    }
  }
  const maxDeadlineMs = int('maxDeadlineMs', MAX_DEADLINE_MS_RANGE.min, MAX_DEADLINE_MS_RANGE.max);
  const answerBudgetMs = int('answerBudgetMs', 100, 3_600_000);
  const maxInFlight = int('maxInFlight', 1, 10_000_000);
  const maxBodyBytes = int('maxBodyBytes', 1024, 16 * 1024 * 1024);
  // Above 1,000 levels the recursive walkers (JSON.stringify, ~4,500 on a fresh stack) lose their margin.
  const maxBodyDepth = int('maxBodyDepth', 1, 1000);
  const maxBodyValues = int('maxBodyValues', 1, 10_000_000);
  const shutdownGraceMs = int('shutdownGraceMs', 0, 600_000);
  const reloadDebounceMs = int('reloadDebounceMs', 0, 60_000);

  const adminAddress = raw('adminAddress') || DEFAULTS.adminAddress;
  const adminPort = /^(?:[\w.-]+|\[[\da-f:]+\]):(\d{1,5})$/i.exec(adminAddress)?.[1];
  if (adminPort === undefined || Number(adminPort) > 65_535) {
    problems.push(`${ENV_VARS.adminAddress}=${adminAddress}: must be host:port (port 0 picks a free port)`);
  }
  // The token's value never goes into a message.
  const adminToken = raw('adminToken') || undefined;
  if (adminToken !== undefined && (adminToken.length < MIN_ADMIN_TOKEN_LENGTH || /\s/.test(adminToken))) {
    problems.push(
      `${ENV_VARS.adminToken}: must be at least ${MIN_ADMIN_TOKEN_LENGTH} characters without whitespace`,
    );
  }
  const protectValue = raw('adminProtectContents') || String(DEFAULTS.adminProtectContents);
  const adminProtectContents = protectValue === 'true';
  if (protectValue !== 'true' && protectValue !== 'false') {
    problems.push(`${ENV_VARS.adminProtectContents}=${protectValue}: must be true or false`);
  } else if (adminProtectContents && adminToken === undefined) {
    // Protected contents nobody can unlock would be a UI that shows nothing, silently.
    problems.push(`${ENV_VARS.adminProtectContents}=true needs ${ENV_VARS.adminToken}`);
  }
  if (answerBudgetMs < maxDeadlineMs) {
    problems.push(
      `${ENV_VARS.answerBudgetMs}=${answerBudgetMs} is below ${ENV_VARS.maxDeadlineMs}=${maxDeadlineMs}: a saga could not answer within its deadline`,
    );
  }

  if (problems.length > 0) throw new SagameshError(ERRORS.CONFIG_INVALID, problems.join('; '), problems);
  return Object.freeze({
    sagasDir: path.resolve(cwd, raw('sagasDir') || DEFAULTS.sagasDir),
    grpcAddress,
    egressUrl,
    egressConnections,
    egressProtocol: egressProtocol ?? DEFAULTS.egressProtocol,
    store,
    retentionMs,
    idempotencyRetentionMs,
    leaseTtlMs,
    instanceId,
    logLevel: level ?? 'info',
    logRedact: Object.freeze(logRedact),
    maxDeadlineMs,
    answerBudgetMs,
    maxInFlight,
    maxBodyBytes,
    maxBodyDepth,
    maxBodyValues,
    shutdownGraceMs,
    adminAddress,
    ...(adminToken !== undefined ? { adminToken: new Secret(adminToken) } : {}),
    adminProtectContents,
    reloadDebounceMs,
  });
}
