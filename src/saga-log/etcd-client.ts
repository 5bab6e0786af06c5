import fs from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ERRORS, SagameshError } from '../errors';

/**
 * A small etcd v3 client on @grpc/grpc-js and a trimmed copy of etcd's own rpc.proto
 * (protos/etcd/rpc.proto): the KV, Lease, Auth and Maintenance calls the etcd saga log makes.
 * docs/saga-log.md says why not the `etcd3` package.
 *
 * One channel per endpoint; calls go to the current one, and a call that finds it unreachable
 * (UNAVAILABLE, a deadline, "no leader") moves to the next. Reads are tried once on every endpoint;
 * a write only while it was never sent. A Txn whose answer was lost may have committed: its error
 * says so (`inDoubt`), and the caller, which knows what it wrote, finds out (etcd.ts).
 */
export interface EtcdClientOptions {
  /** host:port of each member. */
  readonly endpoints: readonly string[];
  readonly tls?: { readonly ca?: Buffer; readonly cert?: Buffer; readonly key?: Buffer } | undefined;
  readonly auth?: { readonly user: string; readonly password: string } | undefined;
  /** Deadline of every call. */
  readonly callTimeoutMs: number;
}

export type Bytes = Buffer | string;

export interface KeyValue {
  readonly key: Buffer;
  readonly create_revision: string;
  readonly mod_revision: string;
  readonly value: Buffer;
  readonly lease: string;
}

export interface RangeRequest {
  key: Bytes;
  range_end?: Bytes;
  limit?: number;
  sort_order?: 'NONE' | 'ASCEND' | 'DESCEND';
  sort_target?: 'KEY' | 'VERSION' | 'CREATE' | 'MOD' | 'VALUE';
  keys_only?: boolean;
  count_only?: boolean;
  serializable?: boolean;
}
export interface RangeResponse {
  readonly kvs: readonly KeyValue[];
  readonly more: boolean;
  readonly count: string;
}
export interface Compare {
  key: Bytes;
  result: 'EQUAL' | 'GREATER' | 'LESS' | 'NOT_EQUAL';
  target: 'VERSION' | 'CREATE' | 'MOD' | 'VALUE' | 'LEASE';
  create_revision?: string | number;
  mod_revision?: string | number;
  value?: Bytes;
  lease?: string;
}
export type RequestOp =
  | { request_range: RangeRequest }
  | { request_put: { key: Bytes; value: Bytes; lease?: string } }
  | { request_delete_range: { key: Bytes; range_end?: Bytes } }
  | { request_txn: TxnRequest };
export interface TxnRequest {
  compare: Compare[];
  success: RequestOp[];
  failure: RequestOp[];
}
export interface ResponseOp {
  readonly response_range?: RangeResponse;
  readonly response_delete_range?: { readonly deleted: string };
  readonly response_txn?: TxnResponse;
}
export interface TxnResponse {
  readonly succeeded: boolean;
  readonly responses: readonly ResponseOp[];
}

type Unary = (
  req: unknown,
  md: grpc.Metadata,
  opts: grpc.CallOptions,
  cb: grpc.requestCallback<unknown>,
) => void;
type Service = grpc.Client &
  Record<
    string,
    Unary | ((md: grpc.Metadata, opts: grpc.CallOptions) => grpc.ClientDuplexStream<unknown, unknown>)
  >;
interface Member {
  readonly endpoint: string;
  readonly kv: Service;
  readonly lease: Service;
  readonly auth: Service;
  readonly maintenance: Service;
}

let protos: grpc.GrpcObject | undefined;
function etcdProtos(): grpc.GrpcObject {
  if (protos) return protos;
  // protos/ is at the repository root: two levels up from src/, three from dist/src/.
  const file = [path.join(__dirname, '../../protos'), path.join(__dirname, '../../../protos')]
    .map((dir) => path.join(dir, 'etcd/rpc.proto'))
    .find((f) => fs.existsSync(f));
  if (!file) throw new SagameshError(ERRORS.INTERNAL, 'protos/etcd/rpc.proto not found');
  const definition = protoLoader.loadSync(file, {
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  protos = grpc.loadPackageDefinition(definition)['etcdserverpb'] as grpc.GrpcObject;
  return protos;
}

/** Errors that say "this member cannot serve now", so another one may. */
function isUnreachable(err: grpc.ServiceError): boolean {
  return (
    err.code === grpc.status.UNAVAILABLE ||
    err.code === grpc.status.DEADLINE_EXCEEDED ||
    /no leader|leader changed|not capable|timed out/i.test(err.details)
  );
}

/** A call that reached a member and failed there: a write that may have been applied. */
class Unretryable extends Error {
  constructor(override readonly cause: unknown) {
    super('not retried');
  }
}

/** The member could not be reached at all, so the request was never sent. */
function neverSent(err: unknown): boolean {
  const e = err as Partial<grpc.ServiceError>;
  return (
    e.code === grpc.status.UNAVAILABLE && /No connection established|ECONNREFUSED/i.test(e.details ?? '')
  );
}

/**
 * A write that reached a member which then could not answer (it died, dropped the connection, lost
 * its leader, ran past the deadline): it may or may not have committed.
 */
export function inDoubt(err: unknown): boolean {
  const cause = err instanceof SagameshError ? err.cause : err;
  if (typeof cause !== 'object' || cause === null || !('code' in cause)) return false;
  return isUnreachable(cause as grpc.ServiceError) && !neverSent(cause);
}

export function storeError(err: unknown): SagameshError {
  if (err instanceof SagameshError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new SagameshError(ERRORS.STORE_UNAVAILABLE, `etcd: ${message}`, [], { cause: err });
}

export class EtcdClient {
  private readonly members: Member[];
  private current = 0;
  private token: Promise<string> | undefined;

  constructor(private readonly options: EtcdClientOptions) {
    const pkg = etcdProtos();
    const credentials = options.tls
      ? grpc.credentials.createSsl(options.tls.ca ?? null, options.tls.key ?? null, options.tls.cert ?? null)
      : grpc.credentials.createInsecure();
    const channelOptions = {
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
      'grpc.max_send_message_length': 8 * 1024 * 1024,
      'grpc.initial_reconnect_backoff_ms': 200,
      'grpc.max_reconnect_backoff_ms': 2000,
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5000,
    };
    const make = (name: string, endpoint: string): Service => {
      const Ctor = pkg[name] as grpc.ServiceClientConstructor;
      return new Ctor(endpoint, credentials, channelOptions) as unknown as Service;
    };
    this.members = options.endpoints.map((endpoint) => {
      const kv = make('KV', endpoint);
      // The other services share the KV client's channel.
      const share = (name: string): Service => {
        const Ctor = pkg[name] as grpc.ServiceClientConstructor;
        return new Ctor(endpoint, credentials, { channelOverride: kv.getChannel() }) as unknown as Service;
      };
      return { endpoint, kv, lease: share('Lease'), auth: share('Auth'), maintenance: share('Maintenance') };
    });
  }

  range(req: RangeRequest): Promise<RangeResponse> {
    return this.call<RangeResponse>('kv', 'Range', asBytes(req), true);
  }

  /**
   * A Txn that only reads (ranges in both branches) is retried on every member, as a read is; so is
   * one the caller calls `idempotent` (applied twice, it leaves what applying it once does).
   */
  txn(req: TxnRequest, opts: { idempotent?: boolean } = {}): Promise<TxnResponse> {
    const reads = [...req.success, ...req.failure].every((op) => 'request_range' in op);
    return this.call<TxnResponse>('kv', 'Txn', txnBytes(req), reads || opts.idempotent === true);
  }

  /** A new lease; its TTL may be longer than asked (etcd's minimum is 1.5 election timeouts). */
  async leaseGrant(ttlSeconds: number): Promise<{ id: string; ttlSeconds: number }> {
    const r = await this.call<{ ID: string; TTL: string; error: string }>(
      'lease',
      'LeaseGrant',
      { TTL: ttlSeconds },
      true,
    );
    if (r.error) throw storeError(new Error(r.error));
    return { id: r.ID, ttlSeconds: Number(r.TTL) };
  }

  leaseRevoke(id: string): Promise<unknown> {
    return this.call('lease', 'LeaseRevoke', { ID: id }, false);
  }

  /** Renews a lease once; resolves with its TTL in seconds, 0 or less once it has expired. */
  async leaseKeepAlive(id: string): Promise<number> {
    return this.onEveryMember(async (member) => {
      const md = await this.metadata();
      return new Promise<number>((resolve, reject) => {
        const open = member.lease['LeaseKeepAlive'] as (
          md: grpc.Metadata,
          opts: grpc.CallOptions,
        ) => grpc.ClientDuplexStream<unknown, { TTL: string }>;
        const stream = open.call(member.lease, md, { deadline: Date.now() + this.options.callTimeoutMs });
        stream.once('data', (r: { TTL: string }) => {
          resolve(Number(r.TTL));
          stream.cancel();
        });
        stream.once('error', (err: grpc.ServiceError) => {
          if (err.code !== grpc.status.CANCELLED) reject(err);
        });
        stream.write({ ID: id });
      });
    });
  }

  /** One member's status (the helper in tests finds the leader with it). */
  status(endpoint: string): Promise<{ leader: string; header: { member_id: string } }> {
    const member = this.members.find((m) => m.endpoint === endpoint);
    if (!member) throw new SagameshError(ERRORS.INTERNAL, `unknown etcd endpoint ${endpoint}`);
    return this.callOn(member, 'maintenance', 'Status', {});
  }

  close(): void {
    for (const m of this.members) m.kv.close();
  }

  private async call<R>(
    service: keyof Omit<Member, 'endpoint'>,
    method: string,
    req: unknown,
    retry: boolean,
  ): Promise<R> {
    if (retry) return this.onEveryMember((m) => this.callOn<R>(m, service, method, req));
    // A write goes to another member only when it was never sent (no connection to this one).
    return this.onEveryMember(async (member) => {
      try {
        return await this.callOn<R>(member, service, method, req);
      } catch (err) {
        if (neverSent(err)) throw err;
        this.skip(member, err);
        throw new Unretryable(err);
      }
    });
  }

  /** The member calls go to now (there is always one: the endpoints are checked non-empty). */
  private currentMember(): Member {
    const member = this.members[this.current];
    if (!member) throw new Error(`etcd: no member ${this.current} of ${this.members.length}`);
    return member;
  }

  /** Tries the current member, then each other one while they are unreachable. */
  private async onEveryMember<R>(run: (m: Member) => Promise<R>): Promise<R> {
    let last: unknown;
    for (let i = 0; i < this.members.length; i++) {
      const member = this.currentMember();
      try {
        return await run(member);
      } catch (err) {
        if (err instanceof Unretryable) throw storeError(err.cause);
        last = err;
        if (!this.skip(member, err)) break;
      }
    }
    throw storeError(last);
  }

  /** Moves off a member that could not serve; true when the error was that. */
  private skip(member: Member, err: unknown): boolean {
    const unreachable =
      typeof err === 'object' && err !== null && 'code' in err && isUnreachable(err as grpc.ServiceError);
    if (unreachable && this.members[this.current] === member)
      this.current = (this.current + 1) % this.members.length;
    return unreachable;
  }

  private async callOn<R>(
    member: Member,
    service: keyof Omit<Member, 'endpoint'>,
    method: string,
    req: unknown,
  ): Promise<R> {
    const attempt = async (): Promise<R> => {
      const md = await this.metadata();
      return new Promise<R>((resolve, reject) => {
        const client = member[service];
        const fn = client[method] as Unary;
        fn.call(client, req, md, { deadline: Date.now() + this.options.callTimeoutMs }, (err, value) => {
          if (err) reject(err);
          else resolve(value as R);
        });
      });
    };
    try {
      return await attempt();
    } catch (err) {
      // An expired auth token (etcd's simple tokens expire after 5 minutes idle): authenticate again, once.
      if (!this.options.auth || (err as grpc.ServiceError).code !== grpc.status.UNAUTHENTICATED) throw err;
      this.token = undefined;
      return attempt();
    }
  }

  private async metadata(): Promise<grpc.Metadata> {
    const md = new grpc.Metadata();
    const auth = this.options.auth;
    if (!auth) return md;
    this.token ??= this.authenticate(auth).catch((err: unknown) => {
      this.token = undefined;
      throw err;
    });
    md.set('token', await this.token);
    return md;
  }

  private authenticate(auth: { user: string; password: string }): Promise<string> {
    const member = this.currentMember();
    return new Promise((resolve, reject) => {
      const fn = member.auth['Authenticate'] as Unary;
      fn.call(
        member.auth,
        { name: auth.user, password: auth.password },
        new grpc.Metadata(),
        { deadline: Date.now() + this.options.callTimeoutMs },
        (err, value) => {
          if (err) reject(err);
          else resolve((value as { token: string }).token);
        },
      );
    });
  }
}

/** The end of the range of every key that starts with `prefix` (etcd's prefix convention). */
export function prefixEnd(prefix: string): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    const byte = end[i] ?? 0xff;
    if (byte < 0xff) {
      end[i] = byte + 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

/** protobufjs reads a string in a `bytes` field as base64: keys and values go as Buffers. */
function bytes(v: Bytes): Buffer;
function bytes(v: Bytes | undefined): Buffer | undefined;
function bytes(v: Bytes | undefined): Buffer | undefined {
  return typeof v === 'string' ? Buffer.from(v) : v;
}

function asBytes<T extends { key: Bytes; range_end?: Bytes; value?: Bytes }>(r: T): T {
  const out = { ...r, key: bytes(r.key) };
  if (r.range_end !== undefined) out.range_end = bytes(r.range_end);
  if (r.value !== undefined) out.value = bytes(r.value);
  return out;
}

function opBytes(op: RequestOp): RequestOp {
  if ('request_range' in op) return { request_range: asBytes(op.request_range) };
  if ('request_put' in op) return { request_put: asBytes(op.request_put) };
  if ('request_delete_range' in op) return { request_delete_range: asBytes(op.request_delete_range) };
  return { request_txn: txnBytes(op.request_txn) };
}

function txnBytes(t: TxnRequest): TxnRequest {
  return {
    compare: t.compare.map((c) => asBytes(c)),
    success: t.success.map(opBytes),
    failure: t.failure.map(opBytes),
  };
}
