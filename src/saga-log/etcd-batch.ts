import type { PendingAppend } from './batches';
import type { Compare, RequestOp, TxnRequest } from './etcd-client';
import type { EtcdKeys, KeyValueJson, SagaValue } from './etcd-keys';
import { isFinal, statusAfter } from '../runtime/journal';

/**
 * One saga's share of a group commit on etcd: a nested transaction of its own inside the batch's
 * Txn, so its compares decide for it alone — a saga that lost its lease, or a start whose key is
 * held, fails only itself while the others commit (etcd runs every nested Txn of the batch's
 * success branch, each taking its own branch). etcd.ts queues the appends and settles them.
 *
 * - A start compares that the saga does not exist, and with a key, that the key is free (or,
 *   taking over an expired key, that it is as it was read): `failure` reads both back.
 * - Any other append is fenced: it compares that the saga's owner key is on this instance's lease.
 *   An operator's retry of a stuck saga (which has no owner once finished) claims it instead.
 * All of the saga's records of the batch fold into one summary put, and its index keys move with it.
 */

/** etcd refuses a Txn with more than 128 operations in one branch (--max-txn-ops, measured). */
export const MAX_SAGAS_PER_TXN = 64;
export const MAX_RECORDS_PER_SAGA = 100;
/** etcd refuses requests over 1.5 MiB (--max-request-bytes): a batch stays well below. */
export const MAX_TXN_BYTES = 1024 * 1024;

export interface SagaTxn {
  readonly txn: TxnRequest;
  /** The saga's summary once the txn has committed. */
  readonly after: SagaValue;
  /** Whether the txn starts the saga (its failure branch then reads the saga and its key). */
  readonly starts: boolean;
}

export function sagaTxn(
  keys: EtcdKeys,
  lease: string,
  appends: readonly PendingAppend[],
  before: SagaValue | undefined,
  opts: {
    /** Taking over an expired Idempotency-Key: the mod revision it was read at. */
    readonly keyRevision?: string | undefined;
    /** A finished saga this instance has claimed already (an operator's retry under way). */
    readonly retrying?: boolean;
  } = {},
): SagaTxn {
  const { keyRevision } = opts;
  const first = appends[0]?.record;
  if (!first) throw new Error('sagaTxn: no appends');
  const id = first.sagaId;
  const compare: Compare[] = [];
  const success: RequestOp[] = [];
  const failure: RequestOp[] = [];
  const put = (key: string, value: string, withLease?: string): void => {
    success.push({ request_put: { key, value, ...(withLease ? { lease: withLease } : {}) } });
  };
  const del = (key: string): void => void success.push({ request_delete_range: { key } });

  let value: SagaValue;
  /** The saga gets this instance's owner key (a start, a retry); etcd refuses a put and a delete of one key in one Txn. */
  let claims = false;
  const startKey = appends[0]?.key;
  if (first.type === 'saga.started') {
    const keyName = startKey && keys.key(startKey.definition, startKey.key);
    value = {
      definition: first.definition,
      version: first.version,
      status: 'running',
      startedAt: first.at,
      updatedAt: first.at,
      seq: 0,
      ...(keyName ? { idempotencyKey: keyName } : {}),
    };
    compare.push({ key: keys.saga(id), target: 'CREATE', result: 'EQUAL', create_revision: 0 });
    failure.push({ request_range: { key: keys.saga(id), keys_only: true } });
    if (startKey && keyName) {
      compare.push(
        keyRevision
          ? { key: keyName, target: 'MOD', result: 'EQUAL', mod_revision: keyRevision }
          : { key: keyName, target: 'CREATE', result: 'EQUAL', create_revision: 0 },
      );
      failure.push({ request_range: { key: keyName } });
      const held: KeyValueJson = { sagaId: id, requestHash: startKey.requestHash, createdAt: first.at };
      put(keyName, JSON.stringify(held));
    }
    claims = true;
    put(keys.started(first.at, id), '');
  } else {
    if (!before) throw new Error('sagaTxn: an append without the saga');
    value = before;
    if (isFinal(before.status) && !opts.retrying) {
      compare.push({ key: keys.owner(id), target: 'CREATE', result: 'EQUAL', create_revision: 0 });
      claims = true;
    } else {
      compare.push({ key: keys.owner(id), target: 'LEASE', result: 'EQUAL', lease });
    }
  }

  let answer: string | undefined;
  for (const { record, data, answer: a } of appends) {
    const status = statusAfter(record) ?? value.status;
    value = {
      ...value,
      status,
      updatedAt: record.at,
      seq: record.seq,
      ...(isFinal(status) && !isFinal(value.status) ? { finishedAt: record.at } : {}),
    };
    if (!isFinal(status) && value.finishedAt !== undefined) value = withoutFinish(value);
    if (a !== undefined) answer = a;
    put(keys.event(id, record.seq), data);
  }
  put(keys.saga(id), JSON.stringify(value));

  const was = before?.status;
  if (was !== value.status) {
    if (was) del(keys.status(was, id));
    put(keys.status(value.status, id), '');
  }
  if (before?.finishedAt !== undefined && before.finishedAt !== value.finishedAt)
    del(keys.finished(before.finishedAt, id));
  const finishes = value.finishedAt !== undefined && before?.finishedAt !== value.finishedAt;
  // A finished saga has no owner: nothing more is appended to it, except an operator's retry.
  if (finishes && !claims) del(keys.owner(id));
  if (!finishes && claims) put(keys.owner(id), '', lease);
  if (finishes && value.finishedAt !== undefined) {
    put(keys.finished(value.finishedAt, id), '');
    if (answer !== undefined && value.idempotencyKey) put(keys.answer(id), answer);
  }
  return { txn: { compare, success, failure }, after: value, starts: first.type === 'saga.started' };
}

/** Splits a batch's sagas into Txns etcd accepts: at most MAX_SAGAS_PER_TXN, about MAX_TXN_BYTES. */
export function chunkSagas(groups: readonly (readonly PendingAppend[])[]): PendingAppend[][][] {
  const chunks: PendingAppend[][][] = [];
  let chunk: PendingAppend[][] = [];
  let bytes = 0;
  for (const group of groups) {
    const size = group.reduce((n, p) => n + p.data.length + (p.answer?.length ?? 0) + 200, 0);
    if (chunk.length > 0 && (chunk.length >= MAX_SAGAS_PER_TXN || bytes + size > MAX_TXN_BYTES)) {
      chunks.push(chunk);
      chunk = [];
      bytes = 0;
    }
    chunk.push([...group]);
    bytes += size;
  }
  if (chunk.length > 0) chunks.push(chunk);
  return chunks;
}

/** A stuck saga an operator retries runs again: it is no longer finished. */
function withoutFinish(v: SagaValue): SagaValue {
  const copy: { -readonly [K in keyof SagaValue]: SagaValue[K] } = { ...v };
  delete copy.finishedAt;
  return copy;
}
