import path from 'node:path';
import { loadDefinitions } from '../../src/definition/loader';
import type { SagaDefinition } from '../../src/definition/definition';
import { buildSagaMachine } from '../../src/runtime/machine';
import { chartNodes, sagaChart, toDot, toMermaid } from '../../src/runtime/graph';
import { definition, step } from '../helpers/fake-definition';

/** The state chart is read off the machine the server runs: every state and transition appears. */
let bookTrip: SagaDefinition;
let planItinerary: SagaDefinition;

beforeAll(async () => {
  const defs = await loadDefinitions(path.join(__dirname, '..', '..', 'sagas'));
  const byName = new Map(defs.map((d) => [d.name, d]));
  bookTrip = byName.get('book-trip') as SagaDefinition;
  planItinerary = byName.get('plan-itinerary') as SagaDefinition;
});

/** Every state id of an XState machine, walked independently of graph.ts. */
function machineStateIds(definition: SagaDefinition): string[] {
  const ids: string[] = [];
  const walk = (node: { id: string; states: Record<string, unknown> }): void => {
    ids.push(node.id);
    for (const child of Object.values(node.states)) walk(child as typeof node);
  };
  walk(buildSagaMachine(definition).root);
  return ids;
}

describe('sagaChart', () => {
  it('has exactly the states of the machine', () => {
    const ids = chartNodes(sagaChart(bookTrip)).map((n) => n.id);
    expect(ids.sort()).toEqual(machineStateIds(bookTrip).sort());
  });

  it('names parallel regions, finals, the calls states send and readable transition labels', () => {
    const chart = sagaChart(bookTrip);
    const byId = new Map(chartNodes(chart).map((n) => [n.id, n]));
    expect(byId.get('saga.running')?.type).toBe('parallel');
    expect(byId.get('saga.running')?.children.map((c) => c.key)).toEqual(['hotel', 'flight', 'car']);
    expect(byId.get('saga.compensated')?.type).toBe('final');
    const calling = byId.get('saga.running.flight.calling');
    expect(calling?.calls).toEqual(['action.flight']);
    expect(byId.get('saga.compensating.flight.resolving')?.calls).toEqual(['resolve.flight']);
    expect(byId.get('saga.compensating.flight.undoing')?.calls).toEqual(['compensation.flight']);
    expect(byId.get('saga.running.flight.backoff')?.calls).toEqual([]);
    expect(calling?.transitions).toEqual(
      expect.arrayContaining([
        {
          label: 'answer: action.flight',
          guard: 'callSucceeded',
          targets: ['saga.running.flight.succeeded'],
        },
        // flight's timeout in sagas/book-trip.yaml is 1s
        {
          label: 'timeout 1000ms: action.flight',
          guard: 'attemptsLeft',
          targets: ['saga.running.flight.backoff'],
        },
      ]),
    );
    expect(byId.get('saga.running')?.transitions).toEqual(
      expect.arrayContaining([
        { label: 'saga.abort', targets: ['saga.compensating'] },
        { label: 'after 10000ms (deadline)', targets: ['saga.compensating'] },
      ]),
    );
    expect(byId.get('saga.running.hotel.backoff')?.transitions[0]?.label).toBe('after backoff.action.hotel');
  });

  it('follows the definition: pivot mode reaches succeeded through the upstream', () => {
    const byId = new Map(chartNodes(sagaChart(planItinerary)).map((n) => [n.id, n]));
    expect(byId.get('saga.running')?.transitions).toContainEqual({ label: 'done', targets: ['saga.pivot'] });
    expect(byId.get('saga.pivot')?.transitions).toContainEqual({
      label: 'saga.upstream.response',
      guard: 'upstreamSucceeded',
      targets: ['saga.succeeded'],
    });
  });
});

describe('toMermaid', () => {
  it('renders a stateDiagram-v2 with composite states, parallel regions and edges inside their region', () => {
    const text = toMermaid(sagaChart(bookTrip));
    expect(text.startsWith('stateDiagram-v2\n')).toBe(true);
    expect(text).toContain('state "running" as running {');
    expect(text).toMatch(
      /state "hotel" as running_hotel \{[\s\S]*?\n\s+--\n\s+state "flight" as running_flight \{/,
    );
    expect(text).toContain('running --> compensating : saga.abort');
    expect(text).toContain('compensating --> stuck : done [anyStuck]');
    // an edge between two states of one region is written inside that region's block
    const hotelBlock = /state "hotel" as running_hotel \{([\s\S]*?)\n {4}\}/.exec(text)?.[1] ?? '';
    expect(hotelBlock).toContain(
      'running_hotel_calling --> running_hotel_succeeded : answer action.hotel [callSucceeded]',
    );
    // a step with no dependencies calls at once: its region has no waiting state
    expect(hotelBlock).toContain('[*] --> running_hotel_calling');
    expect(hotelBlock).not.toContain('waiting');
    // every machine state is declared
    for (const id of machineStateIds(bookTrip).filter((i) => i !== 'saga')) {
      expect(text).toContain(`as ${id.replace(/^saga\./, '').replace(/\W/g, '_')}`);
    }
  });

  it('gives only a dependent step a waiting state, left when its dependencies succeeded', () => {
    const text = toMermaid(sagaChart(definition([step('hotel'), step('car', ['hotel'])])));
    const carBlock = /state "car" as running_car \{([\s\S]*?)\n {4}\}/.exec(text)?.[1] ?? '';
    expect(carBlock).toContain('[*] --> running_car_waiting');
    expect(carBlock).toContain(
      'running_car_waiting --> running_car_calling : always [dependenciesSucceeded]',
    );
    expect(text).not.toContain('running_hotel_waiting');
  });
});

describe('toDot', () => {
  it('renders clusters for compound states and edges with labels', () => {
    const text = toDot(sagaChart(bookTrip));
    expect(text.startsWith('digraph "saga" {')).toBe(true);
    expect(text).toContain('subgraph "cluster_saga.running" {');
    expect(text).toContain('label="running"; style=dashed;');
    expect(text).toContain('"saga.compensated" [label="compensated", peripheries=2];');
    expect(text).toContain(
      '"saga.running#" -> "saga.compensating#" [label="saga.abort", ltail="cluster_saga.running", lhead="cluster_saga.compensating"];',
    );
    expect(text.trimEnd().endsWith('}')).toBe(true);
    // balanced braces: every cluster is closed
    expect((text.match(/\{/g) ?? []).length).toBe((text.match(/\}/g) ?? []).length);
  });
});
