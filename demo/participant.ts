/**
 * A saga participant for the demo (hotel, flight and car are all instances of this): a tiny
 * HTTP/1.1 JSON booking service that knows nothing about sagas. It only honours the plain-HTTP
 * conventions a saga relies on — idempotent create keyed by the `idempotency-key` header, and
 * idempotent cancel (by id, or by the create's idempotency-key for a caller that never got the
 * id) — and records every call so tests can check order, overlap and headers.
 *
 * State is in memory and per instance; restart or `reset()` forgets everything.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders, IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { parseFault, sleep } from './faults';

export interface Booking {
  id: string;
  /** the participant's name: 'hotel', 'flight', 'car' */
  resource: string;
  status: 'booked' | 'cancelled';
  /** the JSON body of the creating POST, as received */
  request: unknown;
  /** from `x-sagamesh-saga-id` of the creating POST */
  sagaId?: string;
  idempotencyKey?: string;
  traceparent?: string;
  createdAt: string;
  cancelledAt?: string;
}

export interface CallRecord {
  /** arrival order, from 1 (restarts at 1 after reset) */
  seq: number;
  method: string;
  /** request target as received, query included */
  path: string;
  /** the status answered (or that would have been answered, when the client went away first) */
  status: number;
  /** `x-sagamesh-kind` */
  kind?: string;
  /** `x-sagamesh-step` */
  step?: string;
  /** `x-sagamesh-saga-id` */
  sagaId?: string;
  idempotencyKey?: string;
  traceparent?: string;
  /** performance.timeOrigin + performance.now(), ms: comparable across services in one process */
  startedAt: number;
  finishedAt: number;
  /** true when the client disconnected before the answer was written (it never saw `status`) */
  aborted?: boolean;
}

export interface Participant {
  readonly name: string;
  /** Starts listening; resolves the bound port (pass 0 for an ephemeral one). Host defaults to 127.0.0.1. */
  listen(port: number, host?: string): Promise<number>;
  /** Stops listening, drops open connections and abandons pending slow bookings. */
  close(): Promise<void>;
  bookings(): Booking[];
  /** Completed calls in arrival order; control routes (/calls, /healthz, /reset) are not recorded. */
  calls(): CallRecord[];
  /** Number of requests being handled right now (e.g. parked in a `slow:<ms>` delay). */
  inFlight(): number;
  /** Forgets bookings, calls, idempotency keys and flaky counters; pending slow bookings are abandoned. */
  reset(): void;
}

export interface ParticipantOptions {
  /** receives one JSON line (no newline) per request served */
  logger?: (line: string) => void;
}

/** Request bodies above this size get 413: the demo never needs more, and memory stays bounded. */
export const MAX_BODY_BYTES = 1024 * 1024;

/** Wall-clock-anchored monotonic ms, the same clock for every record in the process. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

export class BodyTooLargeError extends Error {
  constructor() {
    super(`request body exceeds ${MAX_BODY_BYTES} bytes`);
  }
}

/** Reads the whole request body; rejects with BodyTooLargeError past MAX_BODY_BYTES. */
export async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buf = chunk as Buffer;
    size += buf.length;
    if (size > MAX_BODY_BYTES) throw new BodyTooLargeError();
    chunks.push(buf);
  }
  return Buffer.concat(chunks);
}

/** Writes a JSON answer unless the client is already gone (writing to a dead socket is pointless). */
export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

/** A single-valued header as a string (node joins repeated unknown headers with ', '). */
export function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  if (Array.isArray(v)) return v.join(', ');
  return v;
}

type JsonParse = { ok: true; value: unknown } | { ok: false };

/** Empty body → `{}` so a bare `curl -X POST` books something; otherwise strict JSON. */
function parseJsonBody(raw: Buffer): JsonParse {
  const text = raw.toString('utf8');
  if (text.trim() === '') return { ok: true, value: {} };
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch {
    return { ok: false };
  }
}

/** Per-request scratch the router fills in, turned into a CallRecord when the request ends. */
interface Exchange {
  req: IncomingMessage;
  res: ServerResponse;
  status: number;
  /** set when the response closed before we finished writing it */
  aborted: boolean;
}

interface Pending {
  promise: Promise<Booking | undefined>;
}

const CONTROL_PATHS = new Set(['/calls', '/healthz', '/reset']);

export function createParticipant(name: string, opts: ParticipantOptions = {}): Participant {
  const log = opts.logger;

  // --- state (everything reset() forgets) ---
  let bookings = new Map<string, Booking>();
  /** idempotency-key → booking id, for replayed creates */
  let byKey = new Map<string, string>();
  /** idempotency-key → creates in progress (slow), so a concurrent retry joins instead of duplicating */
  let pending = new Map<string, Pending>();
  /** flaky counter key → attempts answered 503 so far */
  let flakyAttempts = new Map<string, number>();
  /** ids whose DELETE always answers 500 */
  let cancelFail = new Set<string>();
  /** ids booked with `cancel-slow:<ms>` → how long a DELETE of them waits before it cancels */
  let cancelSlow = new Map<string, number>();
  /** id → cancels in progress (cancel-slow), so a concurrent DELETE joins instead of cancelling twice */
  let cancelling = new Map<string, Promise<boolean>>();
  /** idempotency-key → how many more answers to its creates are garbled (garbled:<n>) */
  let garbled = new Map<string, number>();
  let callLog: CallRecord[] = [];
  let seq = 0;
  let inFlight = 0;
  /** aborted on reset() and close(): pending slow bookings belong to the old state and are dropped */
  let epoch = new AbortController();

  function newId(): string {
    for (;;) {
      const id = `${name}-${randomBytes(8).toString('hex')}`;
      if (!bookings.has(id)) return id;
    }
  }

  function book(body: unknown, req: IncomingMessage, key: string | undefined): Booking {
    const b: Booking = {
      id: newId(),
      resource: name,
      status: 'booked',
      request: body,
      createdAt: new Date().toISOString(),
    };
    const sagaId = header(req.headers, 'x-sagamesh-saga-id');
    const traceparent = header(req.headers, 'traceparent');
    if (sagaId !== undefined) b.sagaId = sagaId;
    if (key !== undefined) b.idempotencyKey = key;
    if (traceparent !== undefined) b.traceparent = traceparent;
    bookings.set(b.id, b);
    if (key !== undefined) byKey.set(key, b.id);
    return b;
  }

  async function createBooking(ex: Exchange): Promise<void> {
    const { req } = ex;
    let raw: Buffer;
    try {
      raw = await readBody(req);
    } catch (err) {
      if (err instanceof BodyTooLargeError)
        return reply(ex, 413, { error: 'too_large' }, { connection: 'close' });
      throw err;
    }
    const parsed = parseJsonBody(raw);
    if (!parsed.ok) return reply(ex, 400, { error: 'bad_json' });
    const body = parsed.value;
    const key = header(req.headers, 'idempotency-key');

    // Replay: the key already produced a booking (even one since cancelled) → same booking, 200.
    if (key !== undefined) {
      const existingId = byKey.get(key);
      const existing = existingId === undefined ? undefined : bookings.get(existingId);
      if (existing) return replyCreated(ex, 200, existing, key);
      const inProgress = pending.get(key);
      if (inProgress) {
        const b = await inProgress.promise;
        if (b) return reply(ex, 200, b);
        return reply(ex, 503, { error: 'unavailable', message: `${name} was reset` });
      }
    }

    const f = parseFault(body);
    if (!f.ok) return reply(ex, 400, { error: 'bad_fault', message: f.message });
    const fault = f.fault;

    switch (fault?.kind) {
      case 'fail':
        // `fail:<ms>` refuses after a delay: later than the other steps of a saga answer.
        if (fault.ms !== undefined && !(await sleep(fault.ms, epoch.signal))) {
          return reply(ex, 503, { error: 'unavailable', message: `${name} was reset` });
        }
        return reply(ex, 409, { error: 'rejected', message: `${name} unavailable` });
      case 'flaky': {
        // Counted per idempotency key (a retry carries the same key); without one, per identical
        // body, so a curl user re-sending the same command sees the same sequence.
        const counter = key !== undefined ? `key:${key}` : `body:${raw.toString('utf8')}`;
        const seen = flakyAttempts.get(counter) ?? 0;
        if (seen < fault.attempts) {
          flakyAttempts.set(counter, seen + 1);
          return reply(ex, 503, {
            error: 'unavailable',
            message: `${name} flaky (${seen + 1}/${fault.attempts})`,
          });
        }
        break;
      }
      case 'slow': {
        // The delay is deliberately not tied to the client connection: if the client gives up,
        // the booking still happens — the "may have succeeded" case a saga must compensate.
        const signal = epoch.signal;
        const work = (async (): Promise<Booking | undefined> => {
          const completed = await sleep(fault.ms, signal);
          return completed && !signal.aborted ? book(body, req, key) : undefined;
        })();
        if (key !== undefined) pending.set(key, { promise: work });
        let b: Booking | undefined;
        try {
          b = await work;
        } finally {
          if (key !== undefined && pending.get(key)?.promise === work) pending.delete(key);
        }
        if (!b) return reply(ex, 503, { error: 'unavailable', message: `${name} was reset` });
        return reply(ex, 201, b);
      }
      case 'cancel-fail':
      case 'cancel-slow':
      case 'garbled':
      case undefined:
        break;
    }
    const b = book(body, req, key);
    if (fault?.kind === 'cancel-fail') cancelFail.add(b.id);
    if (fault?.kind === 'cancel-slow') cancelSlow.set(b.id, fault.ms);
    if (fault?.kind === 'garbled' && key !== undefined) garbled.set(key, fault.answers);
    replyCreated(ex, 201, b, key);
  }

  /**
   * The answer to a create: the booking, or (garbled:<n>, while answers are left for the key) a
   * body that claims to be JSON and is not — the booking was made all the same.
   */
  function replyCreated(ex: Exchange, status: number, b: Booking, key: string | undefined): void {
    const left = key === undefined ? 0 : (garbled.get(key) ?? 0);
    if (left === 0) return reply(ex, status, b);
    garbled.set(key ?? '', left - 1);
    ex.status = status;
    if (ex.res.headersSent || ex.res.destroyed) return;
    const text = JSON.stringify(b).slice(0, 20);
    ex.res.writeHead(status, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(text),
    });
    ex.res.end(text);
  }

  function cancel(b: Booking): void {
    if (b.status !== 'cancelled') {
      b.status = 'cancelled';
      b.cancelledAt = new Date().toISOString();
    }
  }

  async function cancelBooking(ex: Exchange, id: string): Promise<void> {
    const b = bookings.get(id);
    if (!b) return reply(ex, 404, { error: 'not_found' });
    if (cancelFail.has(id)) {
      return reply(ex, 500, { error: 'cancel_failed', message: `${name} cannot cancel ${id}` });
    }
    const delayMs = cancelSlow.get(id);
    if (delayMs !== undefined && b.status !== 'cancelled') {
      // Like a slow create, the wait is not tied to the client connection: a caller that gives up
      // still gets the booking cancelled. A DELETE arriving meanwhile joins the wait in progress.
      let work = cancelling.get(id);
      if (!work) {
        const signal = epoch.signal;
        const started = (async (): Promise<boolean> => {
          const completed = await sleep(delayMs, signal);
          if (!completed || signal.aborted) return false;
          cancel(b);
          return true;
        })();
        work = started;
        cancelling.set(id, started);
        void started.finally(() => {
          if (cancelling.get(id) === started) cancelling.delete(id);
        });
      }
      if (!(await work)) return reply(ex, 503, { error: 'unavailable', message: `${name} was reset` });
      return reply(ex, 200, b);
    }
    cancel(b);
    reply(ex, 200, b);
  }

  function reply(ex: Exchange, status: number, body: unknown, headers?: Record<string, string>): void {
    ex.status = status;
    sendJson(ex.res, status, body, headers);
  }

  async function route(ex: Exchange): Promise<void> {
    const { req } = ex;
    const method = req.method ?? 'GET';
    const pathname = new URL(req.url ?? '/', 'http://participant').pathname;

    if (pathname === '/healthz') {
      if (method === 'GET' || method === 'HEAD') return reply(ex, 200, { ok: true, service: name });
      return methodNotAllowed(ex, 'GET, HEAD');
    }
    if (pathname === '/calls') {
      if (method === 'GET') return reply(ex, 200, { calls: sortedCalls() });
      return methodNotAllowed(ex, 'GET');
    }
    if (pathname === '/reset') {
      if (method !== 'POST') return methodNotAllowed(ex, 'POST');
      reset();
      return reply(ex, 200, { ok: true });
    }
    if (pathname === '/bookings') {
      if (method === 'POST') return createBooking(ex);
      if (method === 'GET') return reply(ex, 200, { bookings: [...bookings.values()] });
      return methodNotAllowed(ex, 'GET, POST');
    }
    const m = /^\/bookings\/([^/]+)$/.exec(pathname);
    if (m) {
      let id: string;
      try {
        id = decodeURIComponent(m[1] ?? '');
      } catch {
        return reply(ex, 404, { error: 'not_found' });
      }
      if (method === 'DELETE') return cancelBooking(ex, id);
      if (method === 'GET') {
        const b = bookings.get(id);
        return b ? reply(ex, 200, b) : reply(ex, 404, { error: 'not_found' });
      }
      return methodNotAllowed(ex, 'GET, DELETE');
    }
    reply(ex, 404, { error: 'not_found' });
  }

  function methodNotAllowed(ex: Exchange, allow: string): void {
    reply(ex, 405, { error: 'method_not_allowed' }, { allow });
  }

  function sortedCalls(): CallRecord[] {
    return [...callLog].sort((a, b) => a.seq - b.seq);
  }

  /** Runs one request to completion, then records and logs it. Never rejects. */
  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const startedAt = nowMs();
    const callSeq = ++seq;
    const callEpoch = epoch;
    const ex: Exchange = { req, res, status: 0, aborted: false };
    res.on('close', () => {
      if (!res.writableFinished) ex.aborted = true;
    });
    inFlight++;
    try {
      await route(ex);
    } catch (err) {
      // A client that vanished mid-body lands here too; answer 500 if anyone is still listening.
      ex.status = 500;
      sendJson(res, 500, { error: 'internal', message: err instanceof Error ? err.message : String(err) });
    } finally {
      inFlight--;
    }
    const finishedAt = nowMs();
    const method = req.method ?? 'GET';
    const path = req.url ?? '/';
    const pathname = path.split('?')[0] ?? path;
    // Calls from before a reset() must not leak into the fresh log.
    if (!CONTROL_PATHS.has(pathname) && callEpoch === epoch) {
      const rec: CallRecord = { seq: callSeq, method, path, status: ex.status, startedAt, finishedAt };
      const kind = header(req.headers, 'x-sagamesh-kind');
      const step = header(req.headers, 'x-sagamesh-step');
      const sagaId = header(req.headers, 'x-sagamesh-saga-id');
      const idempotencyKey = header(req.headers, 'idempotency-key');
      const traceparent = header(req.headers, 'traceparent');
      if (kind !== undefined) rec.kind = kind;
      if (step !== undefined) rec.step = step;
      if (sagaId !== undefined) rec.sagaId = sagaId;
      if (idempotencyKey !== undefined) rec.idempotencyKey = idempotencyKey;
      if (traceparent !== undefined) rec.traceparent = traceparent;
      if (ex.aborted) rec.aborted = true;
      callLog.push(rec);
    }
    if (log) {
      log(
        JSON.stringify({
          level: 30,
          time: Date.now(),
          service: name,
          msg: 'request',
          method,
          path,
          status: ex.status,
          ms: Math.round((finishedAt - startedAt) * 10) / 10,
          sagaId: header(req.headers, 'x-sagamesh-saga-id'),
          step: header(req.headers, 'x-sagamesh-step'),
          kind: header(req.headers, 'x-sagamesh-kind'),
          aborted: ex.aborted || undefined,
        }),
      );
    }
  }

  function reset(): void {
    epoch.abort();
    epoch = new AbortController();
    bookings = new Map();
    byKey = new Map();
    pending = new Map();
    flakyAttempts = new Map();
    cancelFail = new Set();
    cancelSlow = new Map();
    cancelling = new Map();
    garbled = new Map();
    callLog = [];
    seq = 0;
  }

  const server = createServer((req, res) => {
    void handle(req, res);
  });

  return {
    name,
    listen(port: number, host = '127.0.0.1'): Promise<number> {
      return listenOn(server, port, host);
    },
    async close(): Promise<void> {
      // Pending slow bookings are abandoned rather than completed after shutdown.
      epoch.abort();
      epoch = new AbortController();
      await closeServer(server);
    },
    bookings: () => [...bookings.values()],
    calls: sortedCalls,
    inFlight: () => inFlight,
    reset,
  };
}

/** Listens and resolves the bound port; rejects on e.g. EADDRINUSE. */
export function listenOn(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/** Stops accepting, drops every connection (keep-alive and in-flight alike) and waits for close. */
export function closeServer(server: Server): Promise<void> {
  if (!server.listening) return Promise.resolve();
  return new Promise((resolve, reject) => {
    server.close((err) => (err ? reject(err) : resolve()));
    server.closeAllConnections();
  });
}
