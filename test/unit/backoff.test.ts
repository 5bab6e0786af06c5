import { randomUUID } from 'node:crypto';
import { backoffDelayMs, jitterOf } from '../../src/runtime/backoff';

const retry = { attempts: 5, backoffMs: 100, maxBackoffMs: 1_000 };

describe('backoffDelayMs', () => {
  it('grows exponentially to its cap, half fixed and half scaled by the jitter', () => {
    expect([1, 2, 3, 4, 5].map((a) => backoffDelayMs(retry, a, 0))).toEqual([50, 100, 200, 400, 500]);
    expect([1, 2, 3, 4, 5].map((a) => backoffDelayMs(retry, a, 0.999))).toEqual([100, 200, 400, 800, 1000]);
  });
});

describe('jitterOf', () => {
  it('is a function of its key: the same retry of the same saga waits the same', () => {
    expect(jitterOf('s1:hotel:action:2')).toBe(jitterOf('s1:hotel:action:2'));
    expect(jitterOf('s1:hotel:action:2')).not.toBe(jitterOf('s1:hotel:action:3'));
  });

  it('spreads the retries of many sagas over [0, 1) as evenly as a random draw', () => {
    const buckets = new Array<number>(10).fill(0);
    const n = 20_000;
    const all = Array.from({ length: n }, () => jitterOf(`${randomUUID()}:hotel:action:1`));
    expect(Math.min(...all)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...all)).toBeLessThan(1);
    for (const j of all) buckets[Math.floor(j * 10)] = (buckets[Math.floor(j * 10)] ?? 0) + 1;
    // Each tenth holds 2,000 ± 5 standard deviations (~42).
    for (const b of buckets) expect(Math.abs(b - n / 10)).toBeLessThan(212);
  });
});
