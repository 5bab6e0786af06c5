import { ERRORS } from '../errors';
import type { ErrorSpec } from '../errors';
import type { CallDefinition, RetryPolicy, Template } from './definition';
import type { KnownExpressions } from './expression';
import { MAX_DURATION_MS, formatDuration, parseDuration } from './duration';
import type { Path, ProblemCollector } from './problems';
import { DEFAULTS, isRawCall, isRawRequest, isRecord } from './schema';
import type { RawCall, RawHeaders } from './schema';
import { compileHeaderTemplate, compileTemplate } from './template';
import type { Compiled, StepRead, TemplateProblem } from './template-compilation';
import { compileUrlTemplate } from './url-template';
import { RequestReadsCollector } from './request-reads';
import type { RequestReads } from './request-reads';

// Step calls and headers (also the response's and upstream's) of one saga, for compile-saga.ts.

const TEMPLATE_CODES: Record<TemplateProblem['kind'], ErrorSpec> = {
  expression: ERRORS.DEF_EXPRESSION,
  url: ERRORS.DEF_URL,
  value: ERRORS.DEF_SCHEMA,
};

/**
 * What the templates of one reference scope read: a step's action, its compensation, or the
 * response and upstream blocks (which may read any step).
 */
export class Reads {
  readonly steps: StepRead[] = [];
  readonly dynamic: Path[] = [];
  readsBody = false;
  readonly request = new RequestReadsCollector();

  /** `known`: the load's precompiled expressions, if any (expression.ts). */
  constructor(
    private readonly out: ProblemCollector,
    readonly known?: KnownExpressions,
  ) {}

  take<T extends { readonly readsBody: boolean; readonly requestReads: RequestReads }>(
    c: Compiled<T>,
  ): T | undefined {
    for (const p of c.problems) this.out.add(TEMPLATE_CODES[p.kind], p.path, p.message);
    this.steps.push(...c.reads);
    this.dynamic.push(...c.dynamicStepReads);
    if (c.template?.readsBody) this.readsBody = true;
    if (c.template) this.request.add(c.template.requestReads);
    return c.template;
  }
}

/** The request is compiled whenever it is well-formed, even if the call around it is not. */
export function compileCall(
  raw: unknown,
  path: Path,
  kind: 'action' | 'compensation',
  reads: Reads,
  out: ProblemCollector,
): CallDefinition | undefined {
  if (!isRecord(raw) || !isRawRequest(raw.request)) return undefined;
  const req = raw.request;
  const url = reads.take(compileUrlTemplate(req.url, [...path, 'request', 'url'], reads.known));
  const headers = compileHeaders(req.headers, [...path, 'request', 'headers'], reads, out);
  const body =
    req.body === undefined
      ? undefined
      : reads.take(compileTemplate(req.body, [...path, 'request', 'body'], reads.known));
  if (!isRawCall(raw)) return undefined;
  const defaults = DEFAULTS[kind];
  const timeoutMs = duration(raw.timeout, defaults.timeoutMs, [...path, 'timeout'], out);
  if (timeoutMs === 0) out.add(ERRORS.DEF_SCHEMA, [...path, 'timeout'], 'must be longer than 0ms');
  const retry = compileRetry(raw.retry, defaults.retry, [...path, 'retry'], out);
  if (!url || !headers || !retry || !timeoutMs || (req.body !== undefined && !body)) return undefined;
  return {
    request: { method: req.method, url, headers, ...(body ? { body } : {}) },
    timeoutMs,
    retry,
    success: raw.success ?? defaults.success,
  };
}

function compileRetry(
  raw: RawCall['retry'],
  defaults: RetryPolicy,
  path: Path,
  out: ProblemCollector,
): RetryPolicy | undefined {
  const backoffMs = duration(raw?.backoff, defaults.backoffMs, [...path, 'backoff'], out);
  // Without an explicit cap, a backoff above the default cap raises the cap rather than failing.
  const maxBackoffMs = duration(
    raw?.maxBackoff,
    Math.max(defaults.maxBackoffMs, backoffMs ?? 0),
    [...path, 'maxBackoff'],
    out,
  );
  if (backoffMs === undefined || maxBackoffMs === undefined) return undefined;
  if (maxBackoffMs < backoffMs) {
    out.add(
      ERRORS.DEF_SCHEMA,
      [...path, 'maxBackoff'],
      `must not be shorter than backoff (${formatDuration(backoffMs)})`,
    );
    return undefined;
  }
  return { attempts: raw?.attempts ?? defaults.attempts, backoffMs, maxBackoffMs };
}

/** A call's duration field in ms (`fallback` when absent); undefined when malformed or too long. */
function duration(
  raw: string | undefined,
  fallback: number,
  path: Path,
  out: ProblemCollector,
): number | undefined {
  if (raw === undefined) return fallback;
  const ms = parseDuration(raw);
  if (ms !== undefined && ms > MAX_DURATION_MS) {
    out.add(ERRORS.DEF_SCHEMA, path, `must be at most ${formatDuration(MAX_DURATION_MS)}`);
    return undefined;
  }
  return ms;
}

/** Set by the proxy or the step caller; letting a template set them would break framing or routing. */
const RESERVED_HEADERS = new Set([
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'proxy-connection',
  'upgrade',
  'te',
  'trailer',
]);

/** Header names are lowercased; `host` is refused because the URL alone decides where a call goes. */
export function compileHeaders(
  raw: RawHeaders | undefined,
  path: Path,
  reads: Reads,
  out: ProblemCollector,
): Readonly<Record<string, Template>> | undefined {
  const headers = new Map<string, Template>();
  let ok = true;
  for (const [name, value] of Object.entries(raw ?? {})) {
    const lower = name.toLowerCase();
    const at = [...path, name];
    if (lower === 'host') {
      out.add(ERRORS.DEF_URL, at, 'the host is fixed by the URL and cannot be set as a header', true);
    } else if (RESERVED_HEADERS.has(lower)) {
      out.add(ERRORS.DEF_SCHEMA, at, `${lower} is set by the proxy, not by a saga`, true);
    } else if (headers.has(lower)) {
      out.add(ERRORS.DEF_SCHEMA, at, `header ${lower} is given twice (names are case-insensitive)`, true);
    }
    const template = reads.take(compileHeaderTemplate(value, at, reads.known));
    if (template) headers.set(lower, template);
    else ok = false;
  }
  return ok ? Object.fromEntries(headers) : undefined;
}
