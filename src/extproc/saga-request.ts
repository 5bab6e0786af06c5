import type { FieldPath } from '../redaction';
import { isCredentialName, redactFields } from '../redaction';
import type { SagaDefinition, TemplateScope } from '../definition/definition';
import { overlaps } from '../definition/request-reads';

/**
 * The request a saga runs with, which is also all its `saga.started` record keeps of it (and so
 * all that recovery has): method and path; the headers and query parameters its templates read
 * (`definition.requestReads`) — when one reads them other than by name, all of them but
 * credentials and pseudo-headers, and a credential by name the loader already refused; the body
 * when a template reads it, with the SAGAMESH_LOG_REDACT fields no template reads redacted. A field
 * a template reads is kept as it came: recovery must render what the live run rendered. The live
 * run uses this same object, so a read the analysis missed fails at once, not after a restart.
 */
export function sagaRequest(
  definition: SagaDefinition,
  incoming: {
    readonly method: string;
    readonly path: string;
    readonly query: Readonly<Record<string, string>>;
    /** Lower-cased, pseudo-headers included (headersToRecord). */
    readonly headers: Readonly<Record<string, string>>;
    readonly body: unknown;
  },
  redact: readonly FieldPath[],
): TemplateScope['request'] {
  const reads = definition.requestReads;
  const body =
    reads.body.length === 0
      ? null
      : redactFields(
          incoming.body,
          redact.filter((field) => !reads.body.some((read) => overlaps(read, field))),
        );
  return {
    method: incoming.method,
    path: incoming.path,
    query: keep(incoming.query, reads.query),
    headers: keep(incoming.headers, reads.headers),
    body,
  };
}

function keep(
  values: Readonly<Record<string, string>>,
  names: readonly string[] | 'all',
): Record<string, string> {
  const wanted = names === 'all' ? Object.keys(values) : names.filter((n) => Object.hasOwn(values, n));
  // fromEntries: a `__proto__` parameter stays a plain key.
  return Object.fromEntries(
    wanted.filter((n) => !n.startsWith(':') && !isCredentialName(n)).map((n) => [n, values[n] ?? '']),
  );
}
