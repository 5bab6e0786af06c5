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
import { counters, extProcCounters, passThrough } from '../helpers/envoy-stats';

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

test(`${REQUESTS} pass-through requests, ${CONCURRENCY} at a time: no 5xx, no stream reset, no GOAWAY`, async () => {
  expect(await passThrough(stack.ingressUrl, REQUESTS, CONCURRENCY)).toEqual({ 200: REQUESTS });

  // Envoy half-closed every stream instead of resetting it, so sagamesh's HTTP/2 server never sent
  // a GOAWAY, no stream was refused, and none needed the refused-stream retry.
  expect(await extProcCounters(stack.envoy.adminUrl, 'sagamesh', 'ingress')).toEqual({
    tx_reset: 0,
    goaway: 0,
    retries: 0,
    streams_started: REQUESTS,
    streams_failed: 0,
  });

  // Each request reached sagamesh exactly once, and each stream ended normally.
  const sagamesh = await counters(
    `${stack.adminUrl}/metrics`,
    /^(sagamesh_extproc_streams_(?:opened_total|closed_total\{reason="\w+"\}|active)) (\d+)$/,
  );
  expect(sagamesh['sagamesh_extproc_streams_opened_total']).toBe(REQUESTS);
  expect(sagamesh['sagamesh_extproc_streams_closed_total{reason="error"}'] ?? 0).toBe(0);
});
