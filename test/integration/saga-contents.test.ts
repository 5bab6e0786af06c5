import path from 'node:path';
import Database from 'better-sqlite3';
import type { Stack } from '../../demo/stack';
import { startStack } from '../../demo/stack';
import type { Answer } from '../helpers/trip-client';
import { postJson } from '../helpers/trip-client';

/**
 * What a saga request leaves behind, through a real Envoy: the saga log keeps only what recovery
 * needs of the request (the fixture's templates read one header, one query parameter and two body
 * fields), never a credential, and SAGAMESH_LOG_REDACT fields no template reads are redacted there
 * and in the log lines.
 */
jest.setTimeout(60_000);

const TOKEN = 'contents-admin-token-0123456789';
const SECRETS = {
  authorization: 'Bearer a-secret-bearer',
  'proxy-authorization': 'Basic c2VjcmV0LXByb3h5',
  'x-api-key': 'k-secret-api-key',
  cookie: 'sid=s-secret-cookie',
};
const CARD = '4111111111111111';
const PASSPORT = 'P-secret-passport';

let stack: Stack;

beforeAll(async () => {
  stack = await startStack({
    ports: 'free',
    sagasDir: path.join(__dirname, '..', 'fixtures', 'sagas', 'contents'),
    env: {
      SAGAMESH_LOG_LEVEL: 'debug',
      SAGAMESH_LOG_REDACT: 'card.number,guest.passport',
      SAGAMESH_ADMIN_TOKEN: TOKEN,
    },
  });
});

afterAll(async () => {
  await stack?.stop();
});

/** A booking with credentials in headers and query, a card (read by no template) and a passport (read). */
async function book(): Promise<{ answer: Answer; sagaId: string }> {
  const answer = await postJson(
    stack,
    '/bookings?ref=r-42&access_token=q-secret-token',
    {
      guest: { name: 'Ada', passport: PASSPORT },
      hotel: { city: 'Porto', nights: 1 },
      card: { number: CARD, holder: 'Ada' },
    },
    { ...SECRETS, 'x-tenant': 't-7', 'x-unread': 'u-1' },
  );
  expect(answer.status).toBe(201);
  return { answer, sagaId: answer.headers.get('x-sagamesh-saga-id') ?? '' };
}

/**
 * The saga.started record as the saga log holds it, read from the SQLite file rather than through
 * sagamesh — which holds the file's exclusive lock, so it is stopped meanwhile.
 */
async function storedStart(sagaId: string): Promise<Record<string, unknown>> {
  await stack.sagamesh.stop();
  const db = new Database(stack.storePath ?? '', { readonly: true, fileMustExist: true });
  try {
    const row = db
      .prepare(`SELECT data FROM saga_events WHERE saga_id = ? AND type = 'saga.started'`)
      .get(sagaId) as { data: string } | undefined;
    return JSON.parse(row?.data ?? '{}') as Record<string, unknown>;
  } finally {
    db.close();
    await stack.restartSagamesh();
  }
}

const secretValues = [...Object.values(SECRETS).map((v) => v.split(/[ =]/).pop() ?? v), 'q-secret-token'];

describe('what the saga log keeps of a request', () => {
  it('is what the templates read, never a credential; a redacted field no template reads is redacted', async () => {
    const { sagaId } = await book();
    // The live run got what it read: the hotel's booking request.
    expect(stack.participants.hotel.bookings()[0]?.request).toEqual({
      guest: { name: 'Ada', passport: PASSPORT },
      hotel: { city: 'Porto', nights: 1 },
      ref: 'r-42',
    });
    const started = await storedStart(sagaId);
    expect(started['request']).toEqual({
      method: 'POST',
      path: '/bookings',
      query: { ref: 'r-42' },
      headers: { 'x-tenant': 't-7' },
      // guest.passport is read (the hotel gets the guest): kept for recovery; card.number is not.
      body: {
        guest: { name: 'Ada', passport: PASSPORT },
        hotel: { city: 'Porto', nights: 1 },
        card: { number: '[redacted]', holder: 'Ada' },
      },
    });
    const text = JSON.stringify(started);
    for (const secret of [...secretValues, CARD]) expect(text).not.toContain(secret);
  });

  it('the debug `saga request` line prints no credential and no redacted field', async () => {
    const { sagaId } = await book();
    const lines = stack.sagamesh.lines().filter((l) => l.includes('"saga request"'));
    expect(lines.length).toBeGreaterThan(0);
    const text = lines.join('\n');
    for (const secret of [...secretValues, CARD, PASSPORT]) expect(text).not.toContain(secret);
    expect(sagaId).not.toBe('');
  });
});
