/**
 * The "direct" system: a client that runs the saga itself, with nothing in between — the physical
 * floor for latency and the ceiling for throughput. Per saga it does what sagamesh does minus the
 * coordinator: every step call in parallel through the same Envoy egress (same undici Pool settings
 * as src/participants/step-caller.ts, same Host routing, same saga headers), waits for all, and when
 * one was refused, cancels the ones that booked (DELETE, in parallel) and answers 409. No log, no
 * state machine, no retries.
 *
 *   node dist/bench/direct/main.js '{"port":8120,"egressUrl":"http://127.0.0.1:10001"}'
 *
 * POST /direct/<topology> with the saga request body (bench/topology.ts) → 201 | 409.
 *
 * As a middle node of a nested saga (bench/nested.ts, `"middle": true`), it is itself a participant:
 * POST /bookings runs its fan-out and answers 201 `{ id }`; DELETE /bookings/<id> cancels what
 * that fan-out booked — the nested fan-out by hand.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:http';
import { Pool } from 'undici';

interface Options {
  port: number;
  egressUrl: string;
  middle?: boolean;
}

interface StepResult {
  readonly name: string;
  readonly status: number;
  readonly id?: string;
}

const options = JSON.parse(process.argv[2] ?? '{}') as Options;
const pool = new Pool(options.egressUrl, {
  connections: 256,
  headersTimeout: 0,
  bodyTimeout: 0,
  keepAliveTimeout: 30_000,
});

async function call(
  method: string,
  host: string,
  path: string,
  sagaId: string,
  kind: 'action' | 'compensation',
  body?: unknown,
): Promise<{ status: number; body: unknown }> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const res = await pool.request({
    method,
    path,
    headers: {
      host,
      'x-sagamesh-saga-id': sagaId,
      'x-sagamesh-step': host,
      'x-sagamesh-kind': kind,
      'idempotency-key': `${sagaId}:${host}:${kind}`,
      ...(payload !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(payload !== undefined ? { body: payload } : {}),
  });
  const text = await res.body.text();
  let parsed: unknown = null;
  try {
    parsed = text ? (JSON.parse(text) as unknown) : null;
  } catch {
    parsed = text;
  }
  return { status: res.statusCode, body: parsed };
}

async function runSaga(request: Record<string, unknown>): Promise<{ status: number; body: unknown }> {
  const sagaId = randomUUID();
  const results = await Promise.all(
    Object.entries(request).map(async ([name, payload]): Promise<StepResult> => {
      try {
        const r = await call('POST', name, '/bookings', sagaId, 'action', payload);
        const id = (r.body as { id?: unknown } | null)?.id;
        return { name, status: r.status, ...(typeof id === 'string' ? { id } : {}) };
      } catch {
        return { name, status: 0 };
      }
    }),
  );
  const booked = results.filter((r) => r.status === 200 || r.status === 201);
  if (booked.length === results.length) {
    if (options.middle) remember(sagaId, booked);
    return { status: 201, body: { sagaId, id: sagaId } };
  }
  await cancel(sagaId, booked);
  return { status: 409, body: { sagaId, status: 'compensated' } };
}

function cancel(sagaId: string, booked: readonly StepResult[]): Promise<unknown> {
  return Promise.all(
    booked.map((r) =>
      call('DELETE', r.name, `/bookings/${encodeURIComponent(r.id ?? '')}`, sagaId, 'compensation').catch(
        () => undefined,
      ),
    ),
  );
}

/** A middle node's fan-outs, for a later DELETE: the last 10,000 (a bench run cancels few). */
const fanOuts = new Map<string, readonly StepResult[]>();
function remember(sagaId: string, booked: readonly StepResult[]): void {
  fanOuts.set(sagaId, booked);
  if (fanOuts.size > 10_000) fanOuts.delete(fanOuts.keys().next().value ?? '');
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const cancelled = /^\/bookings\/([^/]+)$/.exec(req.url ?? '');
  if (options.middle && req.method === 'DELETE' && cancelled) {
    const id = decodeURIComponent(cancelled[1] ?? '');
    const booked = fanOuts.get(id);
    if (!booked) return reply(res, 404, { error: 'not_found' });
    fanOuts.delete(id);
    await cancel(id, booked);
    return reply(res, 200, { id, status: 'cancelled' });
  }
  const path = options.middle ? '/bookings' : '/direct/';
  if (req.method !== 'POST' || !req.url?.startsWith(path)) return reply(res, 404, { error: 'not_found' });
  let request: Record<string, unknown>;
  try {
    request = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
  } catch {
    return reply(res, 400, { error: 'bad_json' });
  }
  const answer = await runSaga(request);
  reply(res, answer.status, answer.body);
}

const server = createServer((req, res) => {
  handle(req, res).catch(() => reply(res, 500, { error: 'internal' }));
});
server.keepAliveTimeout = 60_000;
server.listen(options.port, '127.0.0.1', () => process.stdout.write('ready\n'));
process.once('SIGTERM', () => process.exit(0));
process.once('SIGINT', () => process.exit(0));
