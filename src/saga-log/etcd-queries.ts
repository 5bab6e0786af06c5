import type { EtcdClient, KeyValue, RequestOp } from './etcd-client';
import { prefixEnd } from './etcd-client';
import type { EtcdKeys, KeyValueJson, SagaValue } from './etcd-keys';
import { parseJson, parseSagaValue, toSummary } from './etcd-keys';
import type { ListOptions, SagaSummary } from '../runtime/journal';
import { SAGA_STATUSES } from '../runtime/journal';

/**
 * The etcd saga log's reads and its bulk work (list, claims, retention): each a few Txns
 * of ranges, so what it reads is one revision of the store.
 */

/** Reads many keys in one Txn each (at most 100 ranges a Txn, under etcd's 128). */
export async function getMany(
  client: EtcdClient,
  keys: readonly string[],
): Promise<(KeyValue | undefined)[]> {
  const out: (KeyValue | undefined)[] = [];
  for (let i = 0; i < keys.length; i += 100) {
    const slice = keys.slice(i, i + 100);
    const r = await client.txn({
      compare: [],
      success: slice.map((key): RequestOp => ({ request_range: { key } })),
      failure: [],
    });
    for (const op of r.responses) out.push(op.response_range?.kvs[0]);
  }
  return out;
}

export async function getSaga(
  client: EtcdClient,
  keys: EtcdKeys,
  id: string,
): Promise<SagaValue | undefined> {
  const r = await client.range({ key: keys.saga(id) });
  const kv = r.kvs[0];
  return kv ? parseSagaValue(kv.value) : undefined;
}

/** Newest first; see ListCursor: the `started/` index read backwards from the cursor. */
export async function listSagas(
  client: EtcdClient,
  keys: EtcdKeys,
  opts: ListOptions,
): Promise<SagaSummary[]> {
  const limit = Math.min(opts.limit ?? 100, 1000);
  const from = opts.since !== undefined ? keys.started(opts.since, '') : keys.startedAll();
  let end: Buffer | string = opts.after
    ? keys.started(opts.after.startedAt, opts.after.sagaId)
    : prefixEnd(keys.startedAll());
  const out: SagaSummary[] = [];
  for (;;) {
    const page = await client.range({
      key: from,
      range_end: end,
      sort_order: 'DESCEND',
      sort_target: 'KEY',
      keys_only: true,
      limit: Math.max(limit, 200),
    });
    const ids = page.kvs.map((kv) => keys.idOf(kv.key));
    const values = await getMany(
      client,
      ids.map((id) => keys.saga(id)),
    );
    for (const [i, kv] of values.entries()) {
      const id = ids[i];
      if (!kv || id === undefined) continue;
      const v = parseSagaValue(kv.value);
      if (opts.status && v.status !== opts.status) continue;
      if (opts.definition && v.definition !== opts.definition) continue;
      out.push(toSummary(id, v));
      if (out.length >= limit) return out;
    }
    const last = page.kvs[page.kvs.length - 1];
    if (!page.more || !last) return out;
    end = last.key;
  }
}

/** Unfinished sagas that no instance owns (their owner's lease lapsed), oldest ids first, at most `max`. */
export async function unownedSagas(client: EtcdClient, keys: EtcdKeys, max: number): Promise<string[]> {
  const prefixRange = (p: string): RequestOp => ({
    request_range: { key: p, range_end: prefixEnd(p), keys_only: true },
  });
  const r = await client.txn({
    compare: [],
    success: [
      prefixRange(keys.statuses('running')),
      prefixRange(keys.statuses('compensating')),
      prefixRange(keys.owners()),
    ],
    failure: [],
  });
  const ids = (i: number): string[] =>
    (r.responses[i]?.response_range?.kvs ?? []).map((kv) => keys.idOf(kv.key));
  const owned = new Set(ids(2));
  return [...ids(0), ...ids(1)].filter((id) => !owned.has(id)).slice(0, max);
}

/**
 * Puts this instance's owner key on each saga nobody owns; returns the ones it got. A saga whose
 * owner key is on this lease already counts as got: so a claim sent again after its answer was
 * lost (it may have committed) neither fails nor leaves the saga owned by a lease whose instance
 * does not know it — nobody's to run until that instance dies.
 */
export async function claimSagas(
  client: EtcdClient,
  keys: EtcdKeys,
  lease: string,
  ids: readonly string[],
): Promise<string[]> {
  if (ids.length === 0) return [];
  const r = await client.txn(
    {
      compare: [],
      success: ids.map((id): RequestOp => ({
        request_txn: {
          compare: [
            { key: keys.owner(id), target: 'CREATE', result: 'EQUAL', create_revision: 0 },
            { key: keys.saga(id), target: 'CREATE', result: 'GREATER', create_revision: 0 },
          ],
          success: [{ request_put: { key: keys.owner(id), value: '', lease } }],
          failure: [{ request_range: { key: keys.owner(id) } }],
        },
      })),
      failure: [],
    },
    { idempotent: true },
  );
  return ids.filter((_, i) => {
    const claim = r.responses[i]?.response_txn;
    return claim?.succeeded || claim?.responses[0]?.response_range?.kvs[0]?.lease === lease;
  });
}

/** Deletes sagas finished before `before`, with their records, indexes, answer and key. */
export async function pruneSagas(
  client: EtcdClient,
  keys: EtcdKeys,
  before: number,
): Promise<{ sagas: number; keys: number }> {
  let sagas = 0;
  let keyCount = 0;
  for (;;) {
    const page = await client.range({
      key: keys.finishedAll(),
      range_end: keys.finished(before, ''),
      keys_only: true,
      limit: 50,
    });
    if (page.kvs.length === 0) return { sagas, keys: keyCount };
    const ids = page.kvs.map((kv) => keys.idOf(kv.key));
    const values = (
      await getMany(
        client,
        ids.map((id) => keys.saga(id)),
      )
    ).map((kv) => kv && parseSagaValue(kv.value));
    const keyKvs = await getMany(
      client,
      values.map((v) => v?.idempotencyKey ?? keys.ping()),
    );
    const ops: RequestOp[] = page.kvs.map((kv, i) => {
      const id = keys.idOf(kv.key);
      const v = values[i];
      const deletes: RequestOp[] = [{ request_delete_range: { key: kv.key } }];
      const del = (key: string, end?: Buffer): void =>
        void deletes.push({ request_delete_range: { key, ...(end ? { range_end: end } : {}) } });
      del(keys.saga(id));
      del(keys.events(id), prefixEnd(keys.events(id)));
      del(keys.owner(id));
      del(keys.answer(id));
      for (const s of SAGA_STATUSES) del(keys.status(s, id));
      if (v) del(keys.started(v.startedAt, id));
      const held = keyKvs[i];
      if (v?.idempotencyKey && held && parseJson<KeyValueJson>(held.value, 'a key').sagaId === id) {
        keyCount += 1;
        deletes.push({ request_txn: onlyIfUnchanged(held, v.idempotencyKey) });
      }
      return { request_txn: { compare: [], success: deletes, failure: [] } };
    });
    // Deletes, and a key's only while it is unchanged: sent twice, they leave what once does.
    await client.txn({ compare: [], success: ops, failure: [] }, { idempotent: true });
    sagas += ids.length;
  }
}

/** Deletes Idempotency-Keys created before `before` (a page of keys at a time). */
export async function pruneKeys(client: EtcdClient, keys: EtcdKeys, before: number): Promise<number> {
  let deleted = 0;
  let from: Buffer | string = keys.keys();
  const end = prefixEnd(keys.keys());
  for (;;) {
    const page = await client.range({ key: from, range_end: end, limit: 500 });
    const old = page.kvs.filter((kv) => parseJson<KeyValueJson>(kv.value, 'a key').createdAt < before);
    for (let i = 0; i < old.length; i += 100) {
      const r = await client.txn({
        compare: [],
        success: old.slice(i, i + 100).map((kv): RequestOp => ({ request_txn: onlyIfUnchanged(kv, kv.key) })),
        failure: [],
      });
      deleted += r.responses.filter((op) => op.response_txn?.succeeded).length;
    }
    const last = page.kvs[page.kvs.length - 1];
    if (!page.more || !last) return deleted;
    from = Buffer.concat([last.key, Buffer.from([0])]);
  }
}

function onlyIfUnchanged(kv: KeyValue, key: Buffer | string) {
  return {
    compare: [{ key, target: 'MOD' as const, result: 'EQUAL' as const, mod_revision: kv.mod_revision }],
    success: [{ request_delete_range: { key } }],
    failure: [],
  };
}
