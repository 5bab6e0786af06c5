import type { ListCursor, SagaLog, SagaStatus } from '../../src/runtime/journal';
import { SAGA_STATUSES } from '../../src/runtime/journal';

/** How many sagas a store lists in each status: every page of `list({ status })`, for tests. */
export async function countByStatus(log: Pick<SagaLog, 'list'>): Promise<Record<SagaStatus, number>> {
  const counts = Object.fromEntries(SAGA_STATUSES.map((s) => [s, 0])) as Record<SagaStatus, number>;
  for (const status of SAGA_STATUSES) {
    let after: ListCursor | undefined;
    for (;;) {
      const page = await log.list({ status, limit: 1000, ...(after ? { after } : {}) });
      counts[status] += page.length;
      const last = page.at(-1);
      if (page.length < 1000 || !last) break;
      after = { startedAt: last.startedAt, sagaId: last.sagaId };
    }
  }
  return counts;
}
