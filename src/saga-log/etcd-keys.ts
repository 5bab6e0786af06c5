import { ERRORS, SagameshError } from '../errors';
import type { SagaStatus, SagaSummary } from '../runtime/journal';
import { SAGA_STATUSES } from '../runtime/journal';

/**
 * Where the etcd saga log keeps what, under its prefix (default /sagamesh/). Ids and key names are
 * URI-encoded, so none holds a '/'; numbers are zero-padded, so byte order is numeric order.
 *
 *   sagas/<id>                     the saga's summary (SagaValue, JSON)
 *   events/<id>/<seq:10>           its records, in seq order
 *   owners/<id>                    the instance that owns it, attached to that instance's lease:
 *                                  it vanishes with the lease, and every append compares it
 *   status/<status>/<id>           one per saga: counts and claims read these
 *   started/<startedAt:15>/<id>    the list, newest first (a descending range)
 *   finished/<finishedAt:15>/<id>  retention
 *   keys/<definition>/<key>        an Idempotency-Key (KeyValue, JSON)
 *   answers/<id>                   the answer of a finished saga that has a key
 *   definitions/<version>          a definition's source
 */
export class EtcdKeys {
  constructor(readonly prefix: string) {}

  saga(id: string): string {
    return `${this.prefix}sagas/${enc(id)}`;
  }
  owner(id: string): string {
    return `${this.prefix}owners/${enc(id)}`;
  }
  owners(): string {
    return `${this.prefix}owners/`;
  }
  events(id: string): string {
    return `${this.prefix}events/${enc(id)}/`;
  }
  event(id: string, seq: number): string {
    return `${this.events(id)}${pad(seq, 10)}`;
  }
  statuses(status: SagaStatus): string {
    return `${this.prefix}status/${status}/`;
  }
  status(status: SagaStatus, id: string): string {
    return `${this.statuses(status)}${enc(id)}`;
  }
  startedAll(): string {
    return `${this.prefix}started/`;
  }
  started(at: number, id: string): string {
    return `${this.startedAll()}${pad(at, 15)}/${enc(id)}`;
  }
  finishedAll(): string {
    return `${this.prefix}finished/`;
  }
  finished(at: number, id: string): string {
    return `${this.finishedAll()}${pad(at, 15)}/${enc(id)}`;
  }
  keys(): string {
    return `${this.prefix}keys/`;
  }
  key(definition: string, key: string): string {
    return `${this.keys()}${enc(definition)}/${enc(key)}`;
  }
  answer(id: string): string {
    return `${this.prefix}answers/${enc(id)}`;
  }
  definition(version: string): string {
    return `${this.prefix}definitions/${enc(version)}`;
  }
  ping(): string {
    return `${this.prefix}ping`;
  }

  /** The saga id at the end of an index key (status/, started/, finished/, owners/). */
  idOf(key: Buffer | string): string {
    const s = key.toString();
    return decodeURIComponent(s.slice(s.lastIndexOf('/') + 1));
  }
}

function enc(s: string): string {
  return encodeURIComponent(s);
}

export function pad(n: number, width: number): string {
  return String(Math.max(0, Math.trunc(n))).padStart(width, '0');
}

/** A saga's summary as etcd keeps it: what the list shows, plus what the next append needs. */
export interface SagaValue {
  readonly definition: string;
  readonly version: string;
  readonly status: SagaStatus;
  readonly startedAt: number;
  readonly updatedAt: number;
  readonly finishedAt?: number;
  /** The last record's seq. */
  readonly seq: number;
  /** The etcd key of the Idempotency-Key reserved with its start. */
  readonly idempotencyKey?: string;
}

/** An Idempotency-Key's value. */
export interface KeyValueJson {
  readonly sagaId: string;
  readonly requestHash: string;
  readonly createdAt: number;
}

export function parseJson<T>(data: Buffer, what: string): T {
  try {
    return JSON.parse(data.toString()) as T;
  } catch (err) {
    throw new SagameshError(ERRORS.STORE_CORRUPT, `etcd: ${what} is not JSON`, [], { cause: err });
  }
}

export function parseSagaValue(data: Buffer): SagaValue {
  const v = parseJson<Partial<SagaValue>>(data, 'a saga');
  if (
    typeof v !== 'object' ||
    v === null ||
    !SAGA_STATUSES.includes(v.status as SagaStatus) ||
    typeof v.seq !== 'number' ||
    typeof v.startedAt !== 'number'
  )
    throw new SagameshError(ERRORS.STORE_CORRUPT, 'etcd: a saga value is malformed');
  return v as SagaValue;
}

export function toSummary(sagaId: string, v: SagaValue): SagaSummary {
  return {
    sagaId,
    definition: v.definition,
    version: v.version,
    status: v.status,
    startedAt: v.startedAt,
    updatedAt: v.updatedAt,
  };
}
