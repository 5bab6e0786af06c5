import { ERRORS, SagameshError } from '../errors';
import type { ListOptions, SagaStatus } from '../saga-log/saga-log';
import { SAGA_STATUSES } from '../saga-log/saga-log';

/**
 * `?status=&definition=&since=&limit=` of GET /sagas (and the UI's list), checked all at once.
 * `since` is epoch milliseconds or an ISO 8601 time; `limit` 1–1000, default 50.
 */
export const DEFAULT_LIMIT = 50;
export const MAX_LIMIT = 1000;

export function parseListQuery(query: URLSearchParams): ListOptions & { readonly limit: number } {
  const problems: string[] = [];
  const status = query.get('status') || undefined;
  if (status !== undefined && !SAGA_STATUSES.includes(status as SagaStatus)) {
    problems.push(`status=${status}: must be one of ${SAGA_STATUSES.join(', ')}`);
  }
  const definition = query.get('definition') || undefined;
  const sinceRaw = query.get('since') || undefined;
  let since: number | undefined;
  if (sinceRaw !== undefined) {
    since = /^\d+$/.test(sinceRaw) ? Number(sinceRaw) : Date.parse(sinceRaw);
    if (!Number.isFinite(since))
      problems.push(`since=${sinceRaw}: must be epoch milliseconds or an ISO 8601 time`);
  }
  const limitRaw = query.get('limit') || undefined;
  const limit = limitRaw === undefined ? DEFAULT_LIMIT : Number(limitRaw);
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) {
    problems.push(`limit=${limitRaw}: must be an integer from 1 to ${MAX_LIMIT}`);
  }
  if (problems.length > 0) throw new SagameshError(ERRORS.ADMIN_BAD_REQUEST, problems.join('; '), problems);
  return {
    ...(status !== undefined ? { status: status as SagaStatus } : {}),
    ...(definition !== undefined ? { definition } : {}),
    ...(since !== undefined ? { since } : {}),
    limit,
  };
}
