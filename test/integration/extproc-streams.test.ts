/**
 * ext_proc streams under load, through the real Envoy with envoy/envoy.yaml (bench/notes.md,
 * finding 4). Envoy used to end every ext_proc stream with an RST_STREAM; Node's HTTP/2 server
 * (nghttp2's rapid-reset defence: a burst of 1000 resets, then 33/s) answered that with a GOAWAY
 * about every 1000 streams, and the streams in flight on the connection were refused — 500s.
 * With Envoy's graceful close (layered_runtime in envoy.yaml) Envoy half-closes and sagamesh ends
 * the call: no resets, no GOAWAY, no 500, and every request is processed exactly once.
 */
import type { Stack } from '../../demo/stack';
import { startStack } from '../../demo/stack';

jest.setTimeout(120_000);

/** Well past nghttp2's burst of 1000 resets: without the fix this saw 2–3 GOAWAYs and ~1% 500s. */
const REQUESTS = 3000;
const CONCURRENCY = 64;

let stack: Stack;

beforeAll(async () => {
  stack = await startStack({ ports: 'free', env: { SAGAMESH_LOG_LEVEL: 'info' } });
});

afterAll(async () => {
  await stack?.stop();
});

async function counters(url: string, pattern: RegExp): Promise<Record<string, number>> {
  const text = await (await fetch(url)).text();
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const m = pattern.exec(line);
    if (m?.[1] !== undefined && m[2] !== undefined) out[m[1]] = Number(m[2]);
  }
  return out;
}

test(`${REQUESTS} pass-through requests, ${CONCURRENCY} at a time: no 5xx, no stream reset, no GOAWAY`, async () => {
  const statuses = new Map<number, number>();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < REQUESTS) {
      next++;
      const res = await fetch(`${stack.ingressUrl}/passthrough/${next}`);
      await res.arrayBuffer();
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));

  expect(Object.fromEntries(statuses)).toEqual({ 200: REQUESTS });

  const envoy = await counters(
    `${stack.envoy.adminUrl}/stats?filter=${encodeURIComponent('^(cluster\\.sagamesh|http\\.ingress\\.ext_proc)\\.')}`,
    /^([\w.]+): (\d+)$/,
  );
  expect({
    // Envoy half-closed every stream instead of resetting it…
    'cluster.sagamesh.http2.tx_reset': envoy['cluster.sagamesh.http2.tx_reset'],
    // …so sagamesh's HTTP/2 server never sent a GOAWAY…
    'cluster.sagamesh.upstream_cx_close_notify': envoy['cluster.sagamesh.upstream_cx_close_notify'],
    // …no stream was refused, and none needed the refused-stream retry.
    'http.ingress.ext_proc.streams_failed': envoy['http.ingress.ext_proc.streams_failed'],
    'cluster.sagamesh.upstream_rq_retry': envoy['cluster.sagamesh.upstream_rq_retry'] ?? 0,
  }).toEqual({
    'cluster.sagamesh.http2.tx_reset': 0,
    'cluster.sagamesh.upstream_cx_close_notify': 0,
    'http.ingress.ext_proc.streams_failed': 0,
    'cluster.sagamesh.upstream_rq_retry': 0,
  });
  expect(envoy['http.ingress.ext_proc.streams_started']).toBe(REQUESTS);

  // Each request reached sagamesh exactly once, and each stream ended normally.
  const sagamesh = await counters(
    `${stack.adminUrl}/metrics`,
    /^(sagamesh_extproc_streams_(?:opened_total|closed_total\{reason="\w+"\}|active)) (\d+)$/,
  );
  expect(sagamesh['sagamesh_extproc_streams_opened_total']).toBe(REQUESTS);
  expect(sagamesh['sagamesh_extproc_streams_closed_total{reason="error"}'] ?? 0).toBe(0);
});
