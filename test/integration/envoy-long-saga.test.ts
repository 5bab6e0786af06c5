/**
 * Envoy 1.40 crashed (SIGSEGV in its gRPC async client) when sagamesh answered a saga whose
 * ext_proc stream had been open for 50 s or more, when that stream was the last user of the
 * worker's cached gRPC client (issue 13, item 1; the mechanism is in docs/envoy.md, "The gRPC
 * client cache"). This runs the longest sagas the defaults allow through the real Envoy with
 * envoy/envoy.yaml — each alone on its own stack, since a second stream on the same worker would
 * keep the client alive and hide the crash — and checks that Envoy is still up and serving.
 */
import path from 'node:path';
import type { Stack } from '../../demo/stack';
import { startStack } from '../../demo/stack';
import type { Answer } from '../helpers/trip-client';
import { postJson } from '../helpers/trip-client';

jest.setTimeout(200_000);

const stacks: Stack[] = [];

beforeAll(async () => {
  for (let i = 0; i < 2; i++) {
    stacks.push(
      await startStack({ ports: 'free', sagasDir: path.join(__dirname, '..', 'fixtures', 'sagas', 'long') }),
    );
  }
});

afterAll(async () => {
  await Promise.all(stacks.map((s) => s.stop()));
});

/** The answer, or why there was none (the connection died with Envoy, or no answer in 150 s). */
const attempt = (stack: Stack, pathname: string, body: unknown): Promise<Answer | string> =>
  postJson(stack, pathname, body, {}, AbortSignal.timeout(150_000)).catch((err: unknown) =>
    err instanceof Error ? `${err.name}: ${err.message}` : String(err),
  );

const envoyReady = async (stack: Stack): Promise<number> =>
  fetch(`${stack.envoy.adminUrl}/ready`).then(
    (r) => r.status,
    () => 0,
  );

test('the longest aggregate and pivot sagas answer, and Envoy survives them', async () => {
  const [aggregateStack, pivotStack] = stacks as [Stack, Stack];
  const started = Date.now();
  const [aggregate, pivot] = await Promise.all([
    // The deadline (60 s) passes while `car` hangs; `hotel`'s undo outlasts the answer budget (63 s).
    attempt(aggregateStack, '/long/aggregate', {
      hotel: { fault: 'cancel-slow:600000' },
      car: { fault: 'slow:600000' },
    }),
    // The upstream (`trips`) never answers.
    attempt(pivotStack, '/long/pivot', { fault: 'slow:600000' }),
  ]);

  expect(stacks.map((s) => /Caught Segmentation fault/.test(s.envoy.logs()))).toEqual([false, false]);
  expect(aggregate).toMatchObject({ status: 409, body: { status: 'compensating' } });
  // The pivot's upstream is cut when the saga's own pivot deadline (60 s) passes, not left to
  // Envoy's stream idle timeout (5 min): the undo runs and the client gets the saga's failure.
  expect(pivot).toMatchObject({ status: 409, body: { status: 'compensated' } });
  expect(Date.now() - started).toBeGreaterThanOrEqual(60_000);

  for (const stack of stacks) {
    expect(await envoyReady(stack)).toBe(200);
    // Still serving sagas on the same listener (the crash took the whole ingress down).
    expect(await attempt(stack, '/long/aggregate', { hotel: {}, car: {} })).toMatchObject({ status: 201 });
  }
});
