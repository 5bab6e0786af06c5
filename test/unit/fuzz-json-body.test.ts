import fc from 'fast-check';
import pino from 'pino';
import { SimulatedClock } from 'xstate';
import { ERRORS, SagameshError } from '../../src/errors';
import type { HttpHeaders, ProcessingResponse } from '../../src/extproc/messages';
import { SagaProcessor } from '../../src/extproc/saga-processor';
import { DEFAULT_BODY_LIMITS, jsonShapeProblem } from '../../src/json-limits';
import type { SagaDefinition } from '../../src/definition/definition';
import type { SagaRunner } from '../../src/engine/runner';
import { MemorySagaLog } from '../../src/saga-log/memory';
import { definition, step } from '../helpers/fake-definition';
import { fuzzParams, fuzzTimeout, fuzzTrace, jsonValue, nested } from '../helpers/fuzz';

/**
 * Fuzzing request bodies (issue 14): whatever a client sends as a saga's body — random bytes,
 * JSON nested far past the limits, huge, truncated, under any content type — the one-pass shape
 * check never lets through a document past DEFAULT_BODY_LIMITS, and the processor answers with a
 * coded 4xx or starts the saga with a body within them; it never throws.
 */

/** Depth and values of a parsed document, without recursion (a hostile one may be deep). */
function measure(root: unknown): { depth: number; values: number } {
  let depth = 0;
  let values = 0;
  const pending: [unknown, number][] = [[root, 0]];
  for (let next = pending.pop(); next; next = pending.pop()) {
    const [value, level] = next;
    if (typeof value !== 'object' || value === null) continue;
    depth = Math.max(depth, level + 1);
    const children = Object.values(value);
    values += children.length;
    for (const c of children) pending.push([c, level + 1]);
  }
  return { depth, values };
}

/** Text near JSON: its tokens in random order, strings with escapes, and JSON with a cut. */
const jsonish = fc.oneof(
  fc
    .array(
      fc.constantFrom(
        '[',
        ']',
        '{',
        '}',
        '"',
        '\\',
        '\\"',
        ',',
        ':',
        '1',
        '-0.5e3',
        'true',
        'null',
        ' ',
        '\n',
        '"a"',
        'x',
      ),
      { maxLength: 200 },
    )
    .map((t) => t.join('')),
  jsonValue(6).map((v) => JSON.stringify(v)),
  fc.tuple(jsonValue(6), fc.nat()).map(([v, cut]) => {
    const t = JSON.stringify(v);
    return t.slice(0, cut % (t.length + 1));
  }),
  fc
    .tuple(fc.constantFrom<'array' | 'object'>('array', 'object'), fc.integer({ min: 0, max: 5000 }))
    .map(([k, n]) => nested(k, n)),
  fc.integer({ min: 0, max: 12_000 }).map((n) => `[${Array(n).fill('0').join(',')}]`),
);

describe('jsonShapeProblem over random text', () => {
  it(
    'never throws, and what it lets through JSON.parse builds within the limits',
    () => {
      const limits = fc.record({
        maxDepth: fc.integer({ min: 0, max: 100 }),
        maxValues: fc.integer({ min: 0, max: 20_000 }),
      });
      fc.assert(
        fc.property(jsonish, limits, (text, lim) => {
          fuzzTrace('json shape', { text, lim });
          const problem = jsonShapeProblem(text, lim);
          let parsed: unknown;
          try {
            parsed = JSON.parse(text);
          } catch {
            return; // not JSON: JSON.parse refuses it, whatever the shape check said
          }
          const m = measure(parsed);
          const within = m.depth <= lim.maxDepth && m.values <= lim.maxValues;
          // Exact on JSON: it lets through exactly the documents within the limits.
          expect(problem === undefined).toBe(within);
        }),
        fuzzParams(2000),
      );
    },
    fuzzTimeout(30_000),
  );
});

// --- through the saga processor

const MAX_BODY_BYTES = 4096;

function processor(def: SagaDefinition, started: unknown[]): SagaProcessor {
  const runner = {
    inFlight: 0,
    start: (_d: SagaDefinition, request: { body: unknown }) => {
      started.push(request.body);
      // Stops the processor once the saga would start: a coded answer, as a store failure gives.
      return Promise.reject(new SagameshError(ERRORS.STORE_UNAVAILABLE, 'fuzz: saga started'));
    },
  } as unknown as SagaRunner;
  return new SagaProcessor(
    {
      definitions: () => ({
        match: (m: string, p: string) => (m === 'POST' && p === '/fuzz' ? def : undefined),
      }),
      runner,
      answerBudgetMs: 1000,
      sagaLog: new MemorySagaLog(new SimulatedClock()),
      clock: new SimulatedClock(),
      idempotencyRetentionMs: 60_000,
      isDraining: () => false,
      maxBodyBytes: MAX_BODY_BYTES,
    },
    { logger: pino({ level: 'silent' }) },
  );
}

const headers = (contentType: string | undefined): HttpHeaders => ({
  headers: {
    headers: Object.entries({
      ':method': 'POST',
      ':path': '/fuzz',
      ...(contentType === undefined ? {} : { 'content-type': contentType }),
    }).map(([key, v]) => ({ key, raw_value: Buffer.from(v) })),
  },
  end_of_stream: false,
});

const answerOf = (r: ProcessingResponse): { status: number; code?: string } => {
  const ir = r.immediate_response;
  if (!ir) throw new Error(`no immediate response: ${JSON.stringify(r).slice(0, 200)}`);
  const body = JSON.parse(ir.body?.toString() ?? '') as { error?: { code?: string } };
  return { status: ir.status.code, ...(body.error?.code ? { code: body.error.code } : {}) };
};

describe('a saga request body, through the processor', () => {
  const base = definition([step('hotel')]);
  const definitions: SagaDefinition[] = [
    { ...base, input: { json: true } },
    {
      ...base,
      input: {
        json: true,
        validate: (b: unknown) =>
          typeof b === 'object' && b !== null && !Array.isArray(b) ? [] : ['must be an object'],
      },
    },
    { ...base, input: { json: false } },
  ];
  const body = fc.oneof(
    jsonish.map((t) => Buffer.from(t)),
    fc.uint8Array({ maxLength: 2 * MAX_BODY_BYTES }).map((b) => Buffer.from(b)),
    fc.integer({ min: 0, max: 3 * MAX_BODY_BYTES }).map((n) => Buffer.alloc(n, 0x5b)),
  );
  const contentType = fc.constantFrom(
    undefined,
    'application/json',
    'text/plain',
    'application/x-json; charset=utf-16',
    '',
    'JSON',
  );

  it(
    'answers with a coded 4xx, or starts the saga with a body within the limits',
    async () => {
      await fc.assert(
        fc.asyncProperty(fc.constantFrom(...definitions), body, contentType, async (def, raw, type) => {
          fuzzTrace('body', { def: def.name, raw, type });
          const started: unknown[] = [];
          const p = processor(def, started);
          const first = await p.requestHeaders(headers(type));
          expect(first.request_headers?.response.status).toBe('CONTINUE');
          const answer = answerOf(await p.requestBody({ body: raw, end_of_stream: true }));
          if (started.length === 0) {
            // Refused before anything started: a client error under its own code.
            expect(answer.status).toBeGreaterThanOrEqual(400);
            expect(answer.status).toBeLessThan(500);
            expect(answer.code).toMatch(
              /^SAGAMESH_ERR_(BODY_TOO_LARGE|BODY_NOT_JSON|BODY_TOO_COMPLEX|INPUT_INVALID)$/,
            );
            if (raw.length > MAX_BODY_BYTES) expect(answer.code).toBe('SAGAMESH_ERR_BODY_TOO_LARGE');
            return;
          }
          expect(answer.code).toBe('SAGAMESH_ERR_STORE_UNAVAILABLE');
          expect(raw.length).toBeLessThanOrEqual(MAX_BODY_BYTES);
          const m = measure(started[0]);
          expect(m.depth).toBeLessThanOrEqual(DEFAULT_BODY_LIMITS.maxDepth);
          expect(m.values).toBeLessThanOrEqual(DEFAULT_BODY_LIMITS.maxValues);
        }),
        fuzzParams(1000),
      );
    },
    fuzzTimeout(30_000),
  );
});
