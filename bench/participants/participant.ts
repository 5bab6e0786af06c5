/**
 * The bench participant: the same booking service as demo/participant.ts (idempotent create keyed
 * by `idempotency-key`, cancel by id, 404 = nothing to undo), lean enough to sit under saturation
 * load, and speaking both contracts the peers need:
 *
 *   sagamesh, direct   POST /bookings → 201 {id} | 409;   DELETE /bookings/:id → 200 | 404
 *   DTM                POST /dtm/action?gid&branch_id → 200 | 409 (DTM's "FAILURE");
 *                      POST /dtm/compensate?gid&branch_id → 200 (cancels what the action booked)
 *
 * Both contracts run the same code per call: parse the JSON payload `{ ms, fail }`, wait `ms`,
 * then refuse (`fail`) or book. Unlike the demo participant it keeps no call log, and it forgets
 * the oldest bookings past a cap, so memory stays flat over a long run.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer } from 'node:http';
import { setTimeout as delay } from 'node:timers/promises';

const MAX_BOOKINGS = 200_000;
const MAX_BODY_BYTES = 64 * 1024;
const MAX_DELAY_MS = 60_000;

interface Booking {
  readonly id: string;
  readonly key: string | undefined;
  cancelled: boolean;
}

export interface ParticipantStats {
  readonly name: string;
  readonly inFlight: number;
  readonly peakInFlight: number;
  readonly requests: number;
}

export interface BenchParticipant {
  readonly name: string;
  readonly server: Server;
  stats(): ParticipantStats;
  resetPeak(): void;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

async function readJson(req: IncomingMessage): Promise<{ ms: number; fail: boolean } | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) return undefined;
    chunks.push(chunk as Buffer);
  }
  if (size === 0) return { ms: 0, fail: false };
  try {
    const v = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { ms?: unknown; fail?: unknown };
    const ms = typeof v.ms === 'number' && v.ms >= 0 ? Math.min(v.ms, MAX_DELAY_MS) : 0;
    return { ms, fail: v.fail === true };
  } catch {
    return undefined;
  }
}

export function createBenchParticipant(name: string): BenchParticipant {
  const bookings = new Map<string, Booking>();
  const byKey = new Map<string, Booking>();
  let inFlight = 0;
  let peakInFlight = 0;
  let requests = 0;

  function remember(b: Booking): void {
    bookings.set(b.id, b);
    if (b.key !== undefined) byKey.set(b.key, b);
    if (bookings.size > MAX_BOOKINGS) {
      const oldest = bookings.values().next().value;
      if (oldest) {
        bookings.delete(oldest.id);
        if (oldest.key !== undefined) byKey.delete(oldest.key);
      }
    }
  }

  /** The shared create path: replay by key, else wait, then refuse or book. */
  async function create(req: IncomingMessage, key: string | undefined): Promise<Booking | 'bad' | 'refused'> {
    const payload = await readJson(req);
    if (!payload) return 'bad';
    const known = key === undefined ? undefined : byKey.get(key);
    if (known) return known;
    if (payload.ms > 0) await delay(payload.ms);
    if (payload.fail) return 'refused';
    const again = key === undefined ? undefined : byKey.get(key);
    if (again) return again;
    const b: Booking = { id: `${name}-${randomBytes(8).toString('hex')}`, key, cancelled: false };
    remember(b);
    return b;
  }

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://participant');
    const method = req.method ?? 'GET';
    if (url.pathname === '/bookings' && method === 'POST') {
      const key = req.headers['idempotency-key'];
      const b = await create(req, typeof key === 'string' ? key : undefined);
      if (b === 'bad') return send(res, 400, { error: 'bad_json' });
      if (b === 'refused') return send(res, 409, { error: 'rejected', message: `${name} refused` });
      return send(res, 201, { id: b.id, resource: name, status: 'booked' });
    }
    const m = /^\/bookings\/([^/]+)$/.exec(url.pathname);
    if (m && method === 'DELETE') {
      const b = bookings.get(decodeURIComponent(m[1] ?? ''));
      if (!b) return send(res, 404, { error: 'not_found' });
      b.cancelled = true;
      return send(res, 200, { id: b.id, resource: name, status: 'cancelled' });
    }
    if (url.pathname === '/dtm/action' && method === 'POST') {
      const key = `${url.searchParams.get('gid')}:${url.searchParams.get('branch_id')}`;
      const b = await create(req, key);
      if (b === 'bad') return send(res, 400, { error: 'bad_json' });
      if (b === 'refused') return send(res, 409, { dtm_result: 'FAILURE', message: `${name} refused` });
      return send(res, 200, { dtm_result: 'SUCCESS', id: b.id });
    }
    if (url.pathname === '/dtm/compensate' && method === 'POST') {
      req.resume();
      const b = byKey.get(`${url.searchParams.get('gid')}:${url.searchParams.get('branch_id')}`);
      if (b) b.cancelled = true;
      return send(res, 200, { dtm_result: 'SUCCESS' });
    }
    if (url.pathname === '/healthz') return send(res, 200, { ok: true, service: name });
    req.resume();
    send(res, 404, { error: 'not_found' });
  }

  const server = createServer((req, res) => {
    requests++;
    inFlight++;
    if (inFlight > peakInFlight) peakInFlight = inFlight;
    route(req, res)
      .catch(() => send(res, 500, { error: 'internal' }))
      .finally(() => inFlight--);
  });
  server.keepAliveTimeout = 60_000;
  server.headersTimeout = 65_000;

  return {
    name,
    server,
    stats: () => ({ name, inFlight, peakInFlight, requests }),
    resetPeak: () => {
      peakInFlight = inFlight;
    },
  };
}
