import pino from 'pino';
import type { Logger } from 'pino';

export type { Logger };

/** Headers that never reach a log line. */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'request.headers.authorization',
  'request.headers.cookie',
  'headers.authorization',
  'headers.cookie',
];

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
      redact: { paths: [...REDACTED_PATHS, ...bodyPaths], censor: '[redacted]' },
      formatters: { level: (label) => ({ level: label }) },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}
