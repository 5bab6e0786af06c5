import { ERRORS, SagameshError } from '../errors';
import type { ListCursor, ListOptions, SagaStatus } from '../runtime/journal';
import { SAGA_STATUSES } from '../runtime/journal';

/**
 * `?status=&definition=&since=&limit=&cursor=` of GET /sagas (and the UI's list), checked all at
 * once. `since` is epoch milliseconds or an ISO 8601 time; `limit` 1–1000, default 50; `cursor`
 * the `next` of the previous page.
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
  const cursorRaw = query.get('cursor') || undefined;
  const after = cursorRaw === undefined ? undefined : decodeCursor(cursorRaw);
  if (after === null) problems.push(`cursor=${cursorRaw}: not a cursor this API gave (its \`next\`)`);
  if (problems.length > 0) throw new SagameshError(ERRORS.ADMIN_BAD_REQUEST, problems.join('; '), problems);
  return {
    ...(after ? { after } : {}),
    ...(status !== undefined ? { status: status as SagaStatus } : {}),
    ...(definition !== undefined ? { definition } : {}),
    ...(since !== undefined ? { since } : {}),
    limit,
  };
}

/**
 * The cursor after a page: opaque to clients (base64url of `[startedAt, sagaId]` of the page's
 * last saga), so its form may change without breaking one.
 */
export function encodeCursor(after: ListCursor): string {
  return Buffer.from(JSON.stringify([after.startedAt, after.sagaId]), 'utf8').toString('base64url');
}

/** The position a cursor names, or null when it is not one `encodeCursor` made. */
export function decodeCursor(cursor: string): ListCursor | null {
  if (cursor.length > 1024 || !/^[\w-]+$/.test(cursor)) return null;
  try {
    const value: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (!Array.isArray(value) || value.length !== 2) return null;
    const [startedAt, sagaId] = value as unknown[];
    if (!Number.isSafeInteger(startedAt) || typeof sagaId !== 'string' || sagaId === '') return null;
    return { startedAt: startedAt as number, sagaId };
  } catch {
    return null;
  }
}
