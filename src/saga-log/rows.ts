import { ERRORS, SagameshError } from '../errors';
import type { SagaRecord, SagaSummary } from '../runtime/journal';
import { SAGA_STATUSES } from '../runtime/journal';

/**
 * Rows of the durable stores back into records. The journal holds records sagamesh wrote itself;
 * these checks catch a damaged store, not untrusted input.
 */
export function parseRecord(data: string): SagaRecord {
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch (err) {
    throw new SagameshError(ERRORS.STORE_CORRUPT, 'a saga log record is not JSON', [], { cause: err });
  }
  if (
    typeof value !== 'object' ||
    value === null ||
    typeof (value as { type?: unknown }).type !== 'string' ||
    typeof (value as { sagaId?: unknown }).sagaId !== 'string' ||
    typeof (value as { seq?: unknown }).seq !== 'number'
  ) {
    throw new SagameshError(ERRORS.STORE_CORRUPT, 'a saga log record lacks type, sagaId or seq');
  }
  return value as SagaRecord;
}

export function toSummary(row: unknown): SagaSummary {
  const r = row as Record<string, unknown>;
  const status = SAGA_STATUSES.find((s) => s === r['status']);
  if (typeof r['id'] !== 'string' || !status)
    throw new SagameshError(ERRORS.STORE_CORRUPT, 'a saga row is malformed');
  return {
    sagaId: r['id'],
    definition: String(r['definition']),
    version: String(r['version']),
    status,
    startedAt: Number(r['started_at']),
    updatedAt: Number(r['updated_at']),
  };
}
