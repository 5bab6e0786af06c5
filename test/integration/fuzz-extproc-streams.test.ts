import * as grpc from '@grpc/grpc-js';
import fc from 'fast-check';
import type { Stack } from '../../demo/stack';
import { startStack } from '../../demo/stack';
import type { ProcessingRequest, ProcessingResponse } from '../../src/extproc/messages';
import { externalProcessorService } from '../../src/extproc/protos';
import { fuzzParams, fuzzTimeout, nested } from '../helpers/fuzz';
import { postJson, trip, until } from '../helpers/trip-client';

/**
 * Fuzzing ext_proc streams (issue 14): a raw gRPC client in Envoy's place sends sagamesh random
 * message sequences — phases out of order, repeated, headers missing, bodies oversize, trailers
 * first, streams cancelled early. Each stream ends with status OK or an error status whose
 * details carry a SAGAMESH_ERR_* code (or grpc-js's own RESOURCE_EXHAUSTED for a message past the
 * gRPC limit); every answer names a phase or is an immediate response; sagamesh keeps running,
 * no stream or saga is left open once the streams ended, and an ordinary saga through Envoy still
 * succeeds.
 *
 * Known and left: a stream the client never ends stays open (Envoy always ends its streams). One
 * the client cancels before its first message (seed 455958151, path "5:0") is not reported by
 * grpc-js to the server; it is ended once silent for 10 s (test/unit/extproc-server.test.ts), past
 * this file's run. Every sequence here ends its stream, by a half-close or by a cancel after its
 * first message.
 */

let stack: Stack;
let client: grpc.Client;

beforeAll(async () => {
  stack = await startStack({ ports: 'free', env: { SAGAMESH_STORE: 'memory' } });
  const Client = grpc.makeGenericClientConstructor(externalProcessorService(), 'ExternalProcessor');
  client = new Client(`127.0.0.1:${stack.ports.extProc}`, grpc.credentials.createInsecure(), {
    'grpc.max_send_message_length': -1,
  });
}, 60_000);

afterAll(async () => {
  client?.close();
  await stack?.stop();
});

type Stream = grpc.ClientDuplexStream<ProcessingRequest, ProcessingResponse>;

const header = (key: string, value: string) => ({ key, raw_value: Buffer.from(value) });

const headersArb = fc
  .record({
    method: fc.constantFrom('POST', 'GET', 'post', ''),
    path: fc.option(
      fc.constantFrom('/trips', '/itineraries', '/other', '/trips;x', `/${'a'.repeat(5000)}`, ''),
      { nil: undefined },
    ),
    key: fc.option(fc.constantFrom('k1', 'k2', '', 'x'.repeat(300)), { nil: undefined }),
    end: fc.boolean(),
  })
  .map(({ method, path, key, end }): ProcessingRequest => ({
    request_headers: {
      headers: {
        headers: [
          header(':method', method),
          ...(path === undefined ? [] : [header(':path', path)]),
          header('content-type', 'application/json'),
          ...(key === undefined ? [] : [header('idempotency-key', key)]),
        ],
      },
      end_of_stream: end,
    },
  }));

const bodyArb = fc
  .oneof(
    fc.constant(Buffer.from(JSON.stringify(trip()))),
    fc.constant(Buffer.from('')),
    fc.uint8Array({ maxLength: 512 }).map((b) => Buffer.from(b)),
    fc.integer({ min: 1, max: 5000 }).map((n) => Buffer.from(nested('array', n))),
    fc.constantFrom(70_000, 200_000, 1_200_000).map((n) => Buffer.alloc(n, 0x20)),
  )
  .chain((body) =>
    fc.boolean().map((end): ProcessingRequest => ({ request_body: { body, end_of_stream: end } })),
  );

const messageArb: fc.Arbitrary<ProcessingRequest> = fc.oneof(
  { arbitrary: headersArb, weight: 3 },
  { arbitrary: bodyArb, weight: 3 },
  {
    arbitrary: fc.constant<ProcessingRequest>({ request_trailers: { trailers: { headers: [] } } }),
    weight: 1,
  },
  {
    arbitrary: fc.constantFrom('200', '500', '').map((status): ProcessingRequest => ({
      response_headers: { headers: { headers: [header(':status', status)] }, end_of_stream: false },
    })),
    weight: 2,
  },
  {
    arbitrary: fc.constant<ProcessingRequest>({
      response_body: { body: Buffer.from('{}'), end_of_stream: true },
    }),
    weight: 1,
  },
  {
    arbitrary: fc.constant<ProcessingRequest>({ response_trailers: { trailers: { headers: [] } } }),
    weight: 1,
  },
  { arbitrary: fc.constant<ProcessingRequest>({}), weight: 1 },
);

const sequenceArb = fc.record({
  messages: fc.array(messageArb, { minLength: 0, maxLength: 6 }),
  /** How the client ends the stream: half-close after the last message, or cancel after the n-th answer. */
  end: fc.oneof(
    fc.constant<'half-close'>('half-close'),
    fc.integer({ min: 0, max: 3 }).map((n) => ({ cancelAfter: n })),
  ),
});

const PHASES = [
  'request_headers',
  'request_body',
  'request_trailers',
  'response_headers',
  'response_body',
  'response_trailers',
  'immediate_response',
];

interface Outcome {
  answers: ProcessingResponse[];
  status: grpc.status;
  details: string;
}

/** Plays one sequence, each message after the answer to the one before (as Envoy does). */
function play(
  messages: readonly ProcessingRequest[],
  end: 'half-close' | { cancelAfter: number },
): Promise<Outcome> {
  return new Promise((resolve) => {
    const stream = (client as unknown as { Process: () => Stream }).Process();
    const answers: ProcessingResponse[] = [];
    let next = 0;
    let ended = false;
    const sendNext = () => {
      if (ended) return;
      // A cancel comes after the first message at the earliest (see the file comment).
      if (typeof end === 'object' && next > 0 && answers.length >= end.cancelAfter) {
        ended = true;
        stream.cancel();
        return;
      }
      const message = messages[next++];
      if (message === undefined) {
        ended = true;
        stream.end();
        return;
      }
      stream.write(message);
    };
    stream.on('data', (answer: ProcessingResponse) => {
      answers.push(answer);
      sendNext();
    });
    stream.on('status', (s: grpc.StatusObject) => resolve({ answers, status: s.code, details: s.details }));
    stream.on('error', () => undefined); // the status event says how it ended
    sendNext();
  });
}

const metric = async (name: string): Promise<number> => {
  const text = await fetch(`${stack.adminUrl}/metrics`).then((r) => r.text());
  return Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
};

describe('random ext_proc message sequences from a raw gRPC client', () => {
  let streams = 0;
  const statuses = new Map<string, number>();

  it(
    'end with OK or a coded status, every answer a proper response',
    async () => {
      await fc.assert(
        fc.asyncProperty(sequenceArb, async ({ messages, end }) => {
          const outcome = await play(messages, end);
          streams++;
          // The stream is gone on sagamesh's side too, whatever ended it.
          await until(
            'the stream closed on sagamesh’s side',
            async () => (await metric('sagamesh_extproc_streams_active')) === 0,
            {
              timeoutMs: 3000,
            },
          );
          for (const a of outcome.answers) {
            expect(Object.keys(a).some((k) => PHASES.includes(k))).toBe(true);
          }
          const name = grpc.status[outcome.status] ?? String(outcome.status);
          statuses.set(name, (statuses.get(name) ?? 0) + 1);
          if (outcome.status === grpc.status.OK || outcome.status === grpc.status.CANCELLED) return;
          if (outcome.status === grpc.status.RESOURCE_EXHAUSTED && /larger than max/.test(outcome.details))
            return;
          expect(outcome.details).toMatch(/^SAGAMESH_ERR_[A-Z_]+: /);
        }),
        fuzzParams(400),
      );
      process.stdout.write(
        `fuzz-extproc-streams: ${streams} streams, ${JSON.stringify(Object.fromEntries(statuses))}\n`,
      );
    },
    fuzzTimeout(120_000),
  );

  it('leaves no stream open and no saga in flight; sagamesh is up and an ordinary saga succeeds', async () => {
    const left = async () => ({
      streams: await metric('sagamesh_extproc_streams_active'),
      sagas: await metric('sagamesh_sagas_in_flight'),
    });
    await until('every ext_proc stream closed and every saga settled', async () => {
      const now = await left();
      return now.streams === 0 && now.sagas === 0;
    }).catch(async (err: unknown) => {
      throw new Error(`${String(err)}: ${JSON.stringify(await left())}`);
    });
    expect(await metric('sagamesh_extproc_streams_opened_total')).toBeGreaterThan(0);
    const answer = await postJson(stack, '/trips', trip());
    expect(answer.status).toBe(201);
  }, 30_000);
});
