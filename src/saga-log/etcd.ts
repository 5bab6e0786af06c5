import fs from 'node:fs';
import type { Clock } from '../clock';
import type { EtcdStoreConfig } from '../config/store-url';
import { ERRORS, SagameshError } from '../errors';
import type { PendingAppend, Written } from './batches';
import { bySaga, nextRecord, oneStartPerKey } from './batches';
import { chunkSagas, MAX_RECORDS_PER_SAGA, sagaTxn } from './etcd-batch';
import type { RequestOp, TxnResponse } from './etcd-client';
import { EtcdClient, inDoubt, prefixEnd, storeError } from './etcd-client';
import type { KeyValueJson, SagaValue } from './etcd-keys';
import { EtcdKeys, parseJson, parseSagaValue, toSummary } from './etcd-keys';
import { claimSagas, getMany, getSaga, listSagas, pruneKeys, pruneSagas, unownedSagas } from './etcd-queries';
import { parseRecord } from './rows';
import type {
  FinishedEvent,
  KeyHolder,
  KeyRequest,
  ListOptions,
  PruneCutoffs,
  SagaEvent,
  SagaLog,
  SagaRecord,
  SagaSummary,
  StartedEvent,
  StartOutcome,
  StoredAnswer,
  StoredDefinition,
} from '../runtime/journal';
import { duplicateStart, isFinal, ORPHAN_KEY_AGE_MS, reopens } from '../runtime/journal';

/**
 * The saga log on etcd v3 (`SAGAMESH_STORE=etcd://…`), shared by several sagamesh instances and
 * replicated by etcd's Raft: it survives the loss of a pod, a node, and of a minority of members.
 *
 * Each instance holds one etcd lease, kept alive every third of its TTL (Maintenance). A saga is
 * owned through its `owners/<id>` key, attached to the owner's lease: when an instance dies or
 * stops renewing, the lease lapses, the key vanishes with it, and another instance claims the
 * saga and recovers it (reason `takeover`). Every append is fenced: its Txn compares that the
 * owner key is on this instance's lease, so an instance that lost a saga (paused, partitioned)
 * cannot record — and therefore cannot send — anything more for it. A commit that comes back after
 * this instance's lease may have lapsed (a pause between the commit and its answer) is refused
 * too: the record stands, and the new owner treats its call as in doubt, as recovery does.
 *
 * Appends are group-committed as on PostgreSQL (postgres.ts): the records queued while a batch is
 * written form the next, one Txn per MAX_SAGAS_PER_TXN sagas, each saga in a nested Txn of its own
 * (etcd-batch.ts), so one saga's refusal is its own. Key layout: etcd-keys.ts.
 */
export interface EtcdOptions {
  readonly store: EtcdStoreConfig;
  readonly instanceId: string;
  readonly leaseTtlMs: number;
  /** Monotonic milliseconds (lease deadlines); default performance.now. */
  readonly monotonicMs?: () => number;
}

/** Longest wait for one etcd call: an unreachable cluster fails the boot or the append, never hangs it. */
export const ETCD_CALL_TIMEOUT_MS = 5000;

/** The first append of one saga's batch: a batch always holds at least one. */
function firstOf(appends: readonly PendingAppend[]): PendingAppend {
  const first = appends[0];
  if (!first) throw new Error('etcd saga log: an empty batch of appends');
  return first;
}

export class EtcdSagaLog implements SagaLog {
  private readonly keys: EtcdKeys;
  private readonly seqs = new Map<string, number>();
  /** Each saga's summary as this instance last committed or read it. */
  private readonly values = new Map<string, SagaValue>();
  private readonly seeds = new Map<string, Promise<void>>();
  /** Finished sagas this instance claimed for an operator's retry. */
  private readonly retrying = new Set<string>();
  private pending: PendingAppend[] = [];
  private writer: Promise<void> | undefined;
  private closed = false;

  static async open(options: EtcdOptions, clock: Clock): Promise<EtcdSagaLog> {
    const s = options.store;
    let client: EtcdClient | undefined;
    try {
      const read = (file: string | undefined): Buffer | undefined =>
        file ? fs.readFileSync(file) : undefined;
      const tls = s.ca || s.cert ? { ca: read(s.ca), cert: read(s.cert), key: read(s.key) } : undefined;
      client = new EtcdClient({
        endpoints: s.endpoints,
        tls: tls && {
          ...(tls.ca ? { ca: tls.ca } : {}),
          ...(tls.cert ? { cert: tls.cert } : {}),
          ...(tls.key ? { key: tls.key } : {}),
        },
        auth: s.user !== undefined ? { user: s.user, password: s.password ?? '' } : undefined,
        callTimeoutMs: ETCD_CALL_TIMEOUT_MS,
      });
      const log = new EtcdSagaLog(client, options, clock);
      await log.grant();
      return log;
    } catch (err) {
      client?.close();
      throw storeError(err);
    }
  }

  private lease = { id: '0', deadline: 0 };
  /** The lease was replaced since the last renewal: the sagas running under the old one are lost. */
  private replaced = false;
  private dropping: Promise<void> | undefined;
  private readonly monotonic: () => number;

  private constructor(
    private readonly client: EtcdClient,
    private readonly options: EtcdOptions,
    private readonly clock: Clock,
  ) {
    this.keys = new EtcdKeys(options.store.prefix);
    this.monotonic = options.monotonicMs ?? (() => performance.now());
  }

  /** A new lease for this instance; what it owned under the old one is no longer its own. */
  private async grant(): Promise<void> {
    const sent = this.monotonic();
    const g = await this.client.leaseGrant(Math.max(1, Math.ceil(this.options.leaseTtlMs / 1000)));
    if (this.lease.id !== '0') this.replaced = true;
    this.lease = { id: g.id, deadline: sent + g.ttlSeconds * 1000 };
    this.values.clear();
    this.seqs.clear();
    this.retrying.clear();
  }

  /**
   * Gives up a lease this instance can no longer vouch for (its deadline passed unrenewed): revoked,
   * so the owner keys on it vanish and the sagas it held are claimed — by another instance, or by
   * this one under its new lease — rather than left owned by sagas this instance abandoned.
   */
  private async dropLease(id: string): Promise<void> {
    if (this.lease.id !== id) return;
    this.dropping ??= (async () => {
      await this.grant().catch(() => undefined);
      await this.client.leaseRevoke(id).catch(() => undefined);
    })().finally(() => (this.dropping = undefined));
    await this.dropping;
  }

  async append(sagaId: string, event: SagaEvent): Promise<SagaRecord> {
    return recordOf(await this.enqueue(sagaId, event));
  }

  async start(sagaId: string, event: StartedEvent, key?: KeyRequest): Promise<StartOutcome> {
    const written = await this.enqueue(sagaId, event, key);
    return 'held' in written ? written : { started: written.record };
  }

  async finish(sagaId: string, event: FinishedEvent, answer?: StoredAnswer): Promise<SagaRecord> {
    return recordOf(await this.enqueue(sagaId, event, undefined, answer));
  }

  private async enqueue(
    sagaId: string,
    event: SagaEvent,
    key?: KeyRequest,
    answer?: StoredAnswer,
  ): Promise<Written> {
    if (event.type === 'saga.started') this.seqs.set(sagaId, 0);
    else if (!this.seqs.has(sagaId)) await this.seed(sagaId);
    if (this.closed) throw new SagameshError(ERRORS.STORE_UNAVAILABLE, 'the saga log is closed');
    const { record, data } = nextRecord(this.seqs, sagaId, this.clock.now(), event);
    return new Promise((resolve, reject) => {
      this.pending.push({ record, data, key, answer: answer && JSON.stringify(answer), resolve, reject });
      this.writer ??= this.writeBatches();
    });
  }

  /** Reads the summary (and so the last seq) of a saga this instance has not written to yet. */
  private async seed(sagaId: string): Promise<void> {
    let seed = this.seeds.get(sagaId);
    if (!seed) {
      seed = getSaga(this.client, this.keys, sagaId).then((v) => {
        if (this.seqs.has(sagaId)) return;
        this.seqs.set(sagaId, v?.seq ?? 0);
        if (v) this.values.set(sagaId, v);
      });
      this.seeds.set(sagaId, seed);
    }
    await seed.finally(() => this.seeds.delete(sagaId));
  }

  private forget(sagaId: string): void {
    this.seqs.delete(sagaId);
    this.values.delete(sagaId);
    this.retrying.delete(sagaId);
  }

  /** Group commit, as postgres.ts: one batch at a time, the next one tick after a commit. */
  private async writeBatches(): Promise<void> {
    try {
      for (;;) {
        await new Promise((resolve) => setImmediate(resolve));
        if (this.pending.length === 0) return;
        const { now, later } = oneStartPerKey(this.pending.splice(0));
        const groups: PendingAppend[][] = [];
        for (const appends of bySaga(now).values()) {
          groups.push(appends.slice(0, MAX_RECORDS_PER_SAGA));
          later.push(...appends.slice(MAX_RECORDS_PER_SAGA));
        }
        this.pending.unshift(...later);
        await Promise.all(chunkSagas(groups).map((chunk) => this.writeChunk(chunk)));
      }
    } finally {
      this.writer = undefined;
    }
  }

  /**
   * Writes some sagas' appends in one Txn and settles them. A Txn etcd refuses as a whole for
   * what it holds (too large, a bad request) is written again saga by saga, so only the saga at
   * fault fails. A Txn whose member died under it (`inDoubt`) is sent once more through another
   * member: if the first one committed, each saga's Txn then either writes the same keys again or
   * fails its compares (the saga exists, its owner key is gone), and a saga whose records stand as
   * they were sent is written. Any other failure is the store's and fails the whole chunk.
   */
  private async writeChunk(
    chunk: readonly PendingAppend[][],
    keyRevision?: string,
    resent = false,
  ): Promise<void> {
    const lease = this.lease;
    // A saga whose summary this instance forgot (a failed batch) while more of its appends were
    // queued: read it again, so they are fenced by etcd rather than refused here.
    const missing = chunk
      .map((appends) => firstOf(appends).record)
      .filter((r) => r.type !== 'saga.started' && !this.values.has(r.sagaId))
      .map((r) => r.sagaId);
    if (missing.length > 0) {
      try {
        const kvs = await getMany(
          this.client,
          missing.map((id) => this.keys.saga(id)),
        );
        kvs.forEach((kv, i) => {
          const id = missing[i];
          if (kv && id !== undefined) this.values.set(id, parseSagaValue(kv.value));
        });
      } catch (err) {
        const e = storeError(err);
        for (const appends of chunk)
          if (missing.includes(firstOf(appends).record.sagaId)) appends.forEach((p) => p.reject(e));
        chunk = chunk.filter((appends) => !missing.includes(firstOf(appends).record.sagaId));
      }
    }
    const plans = chunk.map((appends) => {
      const id = firstOf(appends).record.sagaId;
      const before = this.values.get(id);
      if (!before && firstOf(appends).record.type !== 'saga.started') return undefined;
      // A finished saga takes nothing more, but an operator's retry of a stuck one or an undo of
      // a succeeded one (their first record); it has no owner to compare, so any other append to
      // it would claim it.
      if (before && isFinal(before.status) && !this.retrying.has(id) && !reopening(before, appends))
        return undefined;
      return sagaTxn(this.keys, lease.id, appends, before, {
        keyRevision,
        retrying: this.retrying.has(id),
      });
    });
    const ops = plans.flatMap((p): RequestOp[] => (p ? [{ request_txn: p.txn }] : []));
    let r: TxnResponse | undefined;
    try {
      r = ops.length > 0 ? await this.client.txn({ compare: [], success: ops, failure: [] }) : undefined;
    } catch (err) {
      if (chunk.length > 1 && /too large|invalid|duplicate|too many/i.test(String(err))) {
        for (const appends of chunk) await this.writeChunk([appends]);
        return;
      }
      if (!resent && inDoubt(err)) return this.writeChunk(chunk, keyRevision, true);
      const e = storeError(err);
      for (const appends of chunk) {
        for (const p of appends) p.reject(e);
        this.forget(firstOf(appends).record.sagaId);
      }
      if (/lease not found/i.test(e.message)) await this.grant().catch(() => undefined);
      return;
    }
    let i = 0;
    const results = plans.map((plan) => (plan ? r?.responses[i++]?.response_txn : undefined));
    // Sent twice: the sagas whose second Txn failed may have been written by the first.
    let sentBefore = new Set<number>();
    let unknown: SagameshError | undefined;
    if (resent) {
      try {
        sentBefore = await this.committedBefore(chunk, results);
      } catch (err) {
        unknown = storeError(err);
      }
    }
    // A pause may have outlived the lease between the commit and this answer: act on none of it.
    const leaseLapsed = this.monotonic() >= lease.deadline;
    if (leaseLapsed) await this.dropLease(lease.id);
    for (const [n, appends] of chunk.entries()) {
      const plan = plans[n];
      const first = firstOf(appends);
      const id = first.record.sagaId;
      const result = results[n];
      if (plan && (result?.succeeded || sentBefore.has(n)) && !leaseLapsed) {
        const before = this.values.get(id);
        if (isFinal(plan.after.status) && !this.retrying.has(id) && !(before && isFinal(before.status))) {
          this.forget(id);
        } else {
          this.values.set(id, plan.after);
          if (before && isFinal(before.status) && before.finishedAt === plan.after.finishedAt)
            this.retrying.add(id);
          else this.retrying.delete(id);
        }
        for (const p of appends) p.resolve({ record: p.record });
      } else if (unknown && result && !result.succeeded) {
        this.forget(id);
        for (const p of appends) p.reject(unknown);
      } else if (plan?.starts && result && !result.succeeded && !leaseLapsed) {
        await this.startRefused(appends, result);
      } else {
        this.forget(id);
        const e = new SagameshError(ERRORS.LEASE_LOST, `saga ${id}`);
        for (const p of appends) p.reject(e);
      }
    }
  }

  /**
   * The sagas of a chunk sent twice (the first answer lost) whose second Txn failed its compares
   * but whose last record stands as it was sent: the first send committed them.
   */
  private async committedBefore(
    chunk: readonly PendingAppend[][],
    results: readonly (TxnResponse | undefined)[],
  ): Promise<Set<number>> {
    const refused = chunk.flatMap((appends, n) => {
      const last = appends[appends.length - 1];
      return last && results[n]?.succeeded === false ? [{ n, last }] : [];
    });
    if (refused.length === 0) return new Set();
    const kvs = await getMany(
      this.client,
      refused.map(({ last }) => this.keys.event(last.record.sagaId, last.record.seq)),
    );
    return new Set(refused.filter(({ last }, k) => kvs[k]?.value.toString() === last.data).map(({ n }) => n));
  }

  /** A start whose compares failed: the saga exists, or its key is held (perhaps expired). */
  private async startRefused(appends: readonly PendingAppend[], result: TxnResponse): Promise<void> {
    const first = firstOf(appends);
    const id = first.record.sagaId;
    this.forget(id);
    const exists = (result.responses[0]?.response_range?.kvs.length ?? 0) > 0;
    const keyKv = result.responses[1]?.response_range?.kvs[0];
    const fail = (err: unknown): void => appends.forEach((p) => p.reject(err));
    if (exists || !first.key || !keyKv) return fail(duplicateStart(id));
    try {
      const held = parseJson<KeyValueJson>(keyKv.value, 'a key');
      if (await this.expired(held, first.key)) {
        this.seqs.set(id, appends[appends.length - 1]?.record.seq ?? 1);
        return await this.writeChunk([[...appends]], keyKv.mod_revision);
      }
      const holder = await this.holder(held);
      appends.forEach((p) => p.resolve({ held: holder }));
    } catch (err) {
      fail(storeError(err));
    }
  }

  /** A key is taken over once expired, or when a leftover: no saga, no answer, older than ORPHAN_KEY_AGE_MS. */
  private async expired(held: KeyValueJson, k: KeyRequest): Promise<boolean> {
    if (held.createdAt < k.expiredBefore) return true;
    if (held.createdAt >= this.clock.now() - ORPHAN_KEY_AGE_MS) return false;
    const [saga, answer] = await getMany(this.client, [
      this.keys.saga(held.sagaId),
      this.keys.answer(held.sagaId),
    ]);
    return !saga && !answer;
  }

  private async holder(held: KeyValueJson): Promise<KeyHolder> {
    const r = await this.client.range({ key: this.keys.answer(held.sagaId) });
    const answer = r.kvs[0];
    return {
      sagaId: held.sagaId,
      requestHash: held.requestHash,
      ...(answer ? { answer: parseJson<StoredAnswer>(answer.value, 'an answer') } : {}),
    };
  }

  async history(sagaId: string): Promise<readonly SagaRecord[]> {
    const prefix = this.keys.events(sagaId);
    const r = await this.client.range({ key: prefix, range_end: prefixEnd(prefix) });
    return r.kvs.map((kv) => parseRecord(kv.value.toString()));
  }

  async summary(sagaId: string): Promise<SagaSummary | undefined> {
    const v = await getSaga(this.client, this.keys, sagaId);
    return v && toSummary(sagaId, v);
  }

  list(opts: ListOptions = {}): Promise<readonly SagaSummary[]> {
    return listSagas(this.client, this.keys, opts);
  }

  async saveDefinition(d: StoredDefinition): Promise<void> {
    const key = this.keys.definition(d.version);
    // Sent again when its answer is lost: a definition already there is left as it is.
    await this.client.txn(
      {
        compare: [{ key, target: 'CREATE', result: 'EQUAL', create_revision: 0 }],
        success: [{ request_put: { key, value: JSON.stringify(d) } }],
        failure: [],
      },
      { idempotent: true },
    );
  }

  async loadDefinition(version: string): Promise<StoredDefinition | undefined> {
    const r = await this.client.range({ key: this.keys.definition(version) });
    const kv = r.kvs[0];
    return kv ? parseJson<StoredDefinition>(kv.value, 'a definition') : undefined;
  }

  /** Claims (at most 100 a call) unfinished sagas that no live lease owns. */
  async claimUnfinished(): Promise<readonly string[]> {
    const ids = await unownedSagas(this.client, this.keys, 100);
    const claimed = await claimSagas(this.client, this.keys, this.lease.id, ids);
    for (const id of claimed) this.forget(id);
    return claimed;
  }

  /**
   * Keeps this instance's lease alive. While it lives, every saga this instance owns stays its
   * own (the owner keys hang on it); once it has lapsed, they are all lost, and a new lease is
   * granted for the sagas to come (and for claiming the lost ones back, if nobody else did).
   */
  async renewLeases(running: readonly string[]): Promise<readonly string[]> {
    const sent = this.monotonic();
    const ttl = await this.client.leaseKeepAlive(this.lease.id);
    if (ttl > 0) {
      this.lease = { id: this.lease.id, deadline: sent + ttl * 1000 };
    } else {
      await this.grant();
    }
    if (!this.replaced) return [];
    this.replaced = false;
    return running;
  }

  async saveAnswer(sagaId: string, answer: StoredAnswer): Promise<void> {
    const v = await getSaga(this.client, this.keys, sagaId);
    if (!v?.idempotencyKey) return;
    await this.client.txn(
      {
        compare: [],
        success: [{ request_put: { key: this.keys.answer(sagaId), value: JSON.stringify(answer) } }],
        failure: [],
      },
      { idempotent: true },
    );
  }

  async prune(cutoffs: PruneCutoffs): Promise<{ sagas: number; keys: number }> {
    const pruned = await pruneSagas(this.client, this.keys, cutoffs.sagasFinishedBefore);
    const keys = await pruneKeys(this.client, this.keys, cutoffs.keysCreatedBefore);
    return { sagas: pruned.sagas, keys: pruned.keys + keys };
  }

  /** A linearizable read: fails unless a majority of the members answers. */
  async ping(): Promise<void> {
    await this.client.range({ key: this.keys.ping(), count_only: true });
  }

  /**
   * Lets the queued appends commit, then revokes the lease: the sagas this instance still owns
   * are free for another instance at once, rather than after the TTL.
   */
  async close(): Promise<void> {
    this.closed = true;
    await this.writer;
    await this.client.leaseRevoke(this.lease.id).catch(() => undefined);
    this.client.close();
  }
}

/**
 * Whether the appends re-open a finished saga: an operator's retry of a stuck one starts with its
 * `saga.recovered` (runner.resume), an undo of a succeeded one with its `saga.compensating` marked
 * `undo` (runner.undo).
 */
function reopening(before: SagaValue, appends: readonly PendingAppend[]): boolean {
  const first = appends[0]?.record;
  if (!first) return false;
  if (before.status === 'succeeded') return reopens(first);
  return before.status === 'stuck' && first.type === 'saga.recovered' && first.reason === 'retry';
}

function recordOf(written: Written): SagaRecord {
  if ('held' in written) throw new SagameshError(ERRORS.INTERNAL, 'a record without a key was held');
  return written.record;
}
