import { fork } from 'node:child_process';
import path from 'node:path';
import { Pool } from 'undici';
import type { HttpCaller, StepHttpRequest } from '../src/engine/http-caller';
import { CallCancellation } from '../src/engine/http-caller';
import { createHttpCaller, parseBody } from '../src/participants/step-caller';

/**
 * The HTTP/1.1 step caller alone (`npm run bench:caller`): µs of this process's CPU per call to a
 * participant in another process that answers at once, 64 calls at a time, against a baseline in
 * the same run — the caller as it was before it dispatched with its own handler: undici's own
 * `request()` on the same kind of pool with an AbortSignal per call, the body read with `text()`,
 * headers and body handled alike.
 */
const CONCURRENCY = 64;

function request(): StepHttpRequest {
  return {
    method: 'POST',
    origin: 'http://hotel',
    path: '/bookings',
    headers: { 'idempotency-key': 's1:hotel:action', 'x-sagamesh-saga-id': 's1' },
    body: { guest: 'ada', nights: 2 },
    cancellation: new CallCancellation(),
  };
}

/** The caller as it was up to 2026-12-03: undici's request() with a signal, the body read with text(). */
function baseline(egressUrl: string): HttpCaller {
  const pool = new Pool(egressUrl, { connections: CONCURRENCY, headersTimeout: 0, bodyTimeout: 0 });
  return {
    async call(r) {
      const res = await pool.request({
        method: 'POST',
        path: r.path,
        headers: { ...r.headers, host: new URL(r.origin).host, 'content-type': 'application/json' },
        body: JSON.stringify(r.body),
        // The port gave each call an AbortSignal then, which undici listened to.
        signal: new AbortController().signal,
      });
      const text = await res.body.text();
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(res.headers))
        if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(', ') : v;
      return { status: res.statusCode, headers, ...parseBody(text, headers['content-type']) };
    },
    close: () => pool.close(),
  };
}

async function run(caller: HttpCaller, calls: number): Promise<void> {
  let started = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (started++ < calls) await caller.call(request());
    }),
  );
}

async function measure(caller: HttpCaller, calls: number): Promise<{ cpuUs: number; perSecond: number }> {
  await run(caller, 2000);
  const cpu = process.cpuUsage();
  const t0 = performance.now();
  await run(caller, calls);
  const used = process.cpuUsage(cpu);
  const seconds = (performance.now() - t0) / 1000;
  return { cpuUs: (used.user + used.system) / calls, perSecond: calls / seconds };
}

async function main(): Promise<void> {
  const calls = Number(process.argv[2] ?? 30_000);
  const rounds = Number(process.argv[3] ?? 3);
  const server = fork(path.join(__dirname, 'participants', 'instant.js'));
  const port = await new Promise<number>((resolve) => server.once('message', (m) => resolve(Number(m))));
  const egressUrl = `http://127.0.0.1:${port}`;
  try {
    for (let round = 1; round <= rounds; round++) {
      for (const [name, make] of [
        ['undici request()', () => baseline(egressUrl)],
        ['sagamesh caller', () => createHttpCaller({ egressUrl, connections: CONCURRENCY })],
      ] as const) {
        const caller = make();
        const r = await measure(caller, calls);
        await caller.close();
        console.log(
          `round ${round} ${name.padEnd(17)} ${r.cpuUs.toFixed(1).padStart(6)} µs CPU per call, ${r.perSecond.toFixed(0)} calls/s`,
        );
      }
    }
  } finally {
    server.kill();
  }
}

void main();
