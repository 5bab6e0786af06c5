import path from 'node:path';
import { ERRORS, SagameshError } from '../errors';

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
  readonly store: 'memory';
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** Longest saga deadline a definition may declare; keep below Envoy's ext_proc message_timeout. */
  readonly maxDeadlineMs: number;
  /** Longest a stream waits for a saga to settle before answering; below Envoy's message_timeout (65 s). */
  readonly answerBudgetMs: number;
  /** On SIGTERM: how long in-flight streams may take to finish. */
  readonly shutdownGraceMs: number;
}

export const DEFAULTS: Config = Object.freeze({
  sagasDir: './sagas',
  grpcAddress: '127.0.0.1:50051',
  egressUrl: 'http://127.0.0.1:10001',
  store: 'memory',
  logLevel: 'info',
  maxDeadlineMs: 60_000,
  answerBudgetMs: 63_000,
  shutdownGraceMs: 10_000,
});

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** The environment variable behind each setting. */
export const ENV_VARS: Readonly<Record<keyof Config, string>> = Object.freeze({
  sagasDir: 'SAGAMESH_SAGAS_DIR',
  grpcAddress: 'SAGAMESH_GRPC_ADDR',
  egressUrl: 'SAGAMESH_EGRESS_URL',
  store: 'SAGAMESH_STORE',
  logLevel: 'SAGAMESH_LOG_LEVEL',
  maxDeadlineMs: 'SAGAMESH_MAX_DEADLINE_MS',
  answerBudgetMs: 'SAGAMESH_ANSWER_BUDGET_MS',
  shutdownGraceMs: 'SAGAMESH_SHUTDOWN_GRACE_MS',
});

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

  const store = raw('store') || DEFAULTS.store;
  if (store !== 'memory') problems.push(`${ENV_VARS.store}=${store}: this release supports only "memory"`);

  const logLevel = raw('logLevel') || DEFAULTS.logLevel;
  const level = LOG_LEVELS.find((l) => l === logLevel);
  if (!level) problems.push(`${ENV_VARS.logLevel}=${logLevel}: must be one of ${LOG_LEVELS.join(', ')}`);

  const maxDeadlineMs = int('maxDeadlineMs', 100, 3_600_000);
  const answerBudgetMs = int('answerBudgetMs', 100, 3_600_000);
  const shutdownGraceMs = int('shutdownGraceMs', 0, 600_000);
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
    store: 'memory',
    logLevel: level ?? 'info',
    maxDeadlineMs,
    answerBudgetMs,
    shutdownGraceMs,
  });
}
