import type { SagaRecord } from './saga-log';

/**
 * What the group-committing stores (SQLite, PostgreSQL) share: a batch is written per saga where a
 * saga's records must stand or fall together, so one saga's failure stays that saga's.
 */

/** A batch's appends by saga, each saga's in the order they were made. */
export function bySaga<T extends { readonly record: SagaRecord }>(batch: readonly T[]): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const p of batch) {
    const group = groups.get(p.record.sagaId);
    if (group) group.push(p);
    else groups.set(p.record.sagaId, [p]);
  }
  return groups;
}
