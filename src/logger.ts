import pino from 'pino';
import type { Logger } from 'pino';
import { redactCredentials } from './redaction';

export type { Logger };

/**
 * Credentials never reach a log line: wherever a line carries request headers or a query —
 * `request.headers`, `request.query`, `req.headers`, `headers` — every credential-named entry
 * (redaction.ts: authorization, proxy-authorization, cookie, x-api-key, …) reads `[redacted]`. The
 * same rule decides what the saga log keeps and what the admin API serves.
 */
const SERIALIZERS: Record<string, (value: unknown) => unknown> = {
  request: redactMessage,
  req: redactMessage,
  headers: (value) => (isRecord(value) ? redactCredentials(value) : value),
};

function redactMessage(value: unknown): unknown {
  if (typeof value !== 'object' || value === null) return value;
  const { headers, query } = value as { headers?: unknown; query?: unknown };
  if (!isRecord(headers) && !isRecord(query)) return value;
  return {
    ...value,
    ...(isRecord(headers) ? { headers: redactCredentials(headers) } : {}),
    ...(isRecord(query) ? { query: redactCredentials(query) } : {}),
  };
}

function isRecord(value: unknown): value is Record<string, string> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * The process logger. `redactBodyFields` are dot paths into saga request bodies
 * (SAGAMESH_LOG_REDACT, e.g. `card.number`): wherever a log line carries `request.body`, those
 * fields read `[redacted]`.
 */
export function createLogger(
  options: { level: string; name?: string; redactBodyFields?: readonly string[] },
  destination?: pino.DestinationStream,
): Logger {
  const bodyPaths = (options.redactBodyFields ?? []).map((f) => `request.body.${f}`);
  return pino(
    {
      name: options.name ?? 'sagamesh',
      level: options.level,
      serializers: SERIALIZERS,
      redact: { paths: bodyPaths, censor: '[redacted]' },
      formatters: { level: (label) => ({ level: label }) },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}
