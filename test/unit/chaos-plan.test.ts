import { loadDefinitionText } from '../../src/definition/loader';
import { planRound } from '../chaos/plan';
import type { RoundOptions } from '../chaos/plan';
import { createRng } from '../chaos/prng';

/** The chaos plan is a function of the seed, and what it generates is what sagamesh accepts. */
const options: RoundOptions = {
  store: 'postgres',
  sagas: 200,
  concurrency: 4,
  definitions: 30,
  kills: { 'sagamesh-kill': 3, 'envoy-kill': 2, 'postgres-restart': 2 },
  without: [],
};

it('the same seed gives the same plan; another seed another one', () => {
  const a = planRound(createRng(42), options);
  expect(planRound(createRng(42), options)).toEqual(a);
  expect(planRound(createRng(43), options).requests).not.toEqual(a.requests);
  expect(a.faults).toHaveLength(7);
  expect(a.faults.map((f) => f.afterRequest)).toEqual(
    [...a.faults.map((f) => f.afterRequest)].sort((x, y) => x - y),
  );
});

it('forks keep the parts apart: another fault count leaves definitions and requests as they were', () => {
  const a = planRound(createRng(7), options);
  const b = planRound(createRng(7), { ...options, kills: { ...options.kills, 'envoy-kill': 9 } });
  expect(b.definitions).toEqual(a.definitions);
  expect(b.requests).toEqual(a.requests);
});

it('every generated definition loads: DAGs of 1–9 steps, both respond modes, both undo styles', () => {
  const { definitions } = planRound(createRng(1), options);
  for (const d of definitions) {
    const { problems } = loadDefinitionText(`${d.name}.yaml`, d.yaml);
    expect(problems).toEqual([]);
    expect(d.steps.length).toBeGreaterThanOrEqual(1);
    expect(d.steps.length).toBeLessThanOrEqual(9);
  }
  expect(new Set(definitions.map((d) => d.respond))).toEqual(new Set(['aggregate', 'upstream']));
  expect(new Set(definitions.flatMap((d) => d.steps.map((s) => s.undo)))).toEqual(
    new Set(['by-id', 'by-key']),
  );
});

it('--without leaves a fault kind out of every script', () => {
  const { requests } = planRound(createRng(3), { ...options, without: ['garbage', '5xx'] });
  const scripts = JSON.stringify(requests.map((r) => r.body.f));
  expect(scripts).not.toMatch(/garbage|5xx/);
  expect(scripts).toMatch(/slow/);
});
