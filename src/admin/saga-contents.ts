import type { FieldPath } from '../redaction';
import { redactCredentials, redactFields } from '../redaction';
import type { SagaRecord } from '../runtime/journal';

/**
 * A saga's log records as the admin API, the UI and `sagamesh inspect` serve them. Contents — the
 * request a saga started with and its steps' responses — are redacted always: credential-named
 * headers and query parameters (records written before the saga log stopped keeping them, and
 * step responses' `set-cookie` and the like), and the SAGAMESH_LOG_REDACT body fields, which the
 * log keeps when a template reads them. `withheld` (SAGAMESH_ADMIN_PROTECT_CONTENTS without the
 * token) leaves the request's method and path and drops the responses; statuses, outcomes and
 * errors — the timeline — stay.
 */
type Started = Extract<SagaRecord, { type: 'saga.started' }>;

/** A record as served: a withheld `saga.started` keeps only the request's method and path. */
export type ServedRecord =
  | Exclude<SagaRecord, Started>
  | (Omit<Started, 'request'> & {
      readonly request: Started['request'] | Pick<Started['request'], 'method' | 'path'>;
    });

export function servedHistory(
  history: readonly SagaRecord[],
  contents: 'shown' | 'withheld',
  redact: readonly FieldPath[],
): ServedRecord[] {
  return history.map((record) => {
    if (record.type === 'saga.started') {
      const { method, path, query, headers, body } = record.request;
      const request =
        contents === 'withheld'
          ? { method, path }
          : {
              method,
              path,
              query: redactCredentials(query),
              headers: redactCredentials(headers),
              body: redactFields(body, redact),
            };
      return { ...record, request };
    }
    if (record.type === 'call.completed' && record.response) {
      if (contents === 'withheld') {
        const { response, ...rest } = record;
        return rest;
      }
      return {
        ...record,
        response: { ...record.response, headers: redactCredentials(record.response.headers) },
      };
    }
    return record;
  });
}
