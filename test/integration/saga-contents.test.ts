import path from 'node:path';
import Database from 'better-sqlite3';
import type { Stack } from '../../demo/stack';
import { startStack } from '../../demo/stack';
import { request, waitFor } from '../helpers/http';
import type { Answer } from '../helpers/trip-client';
import { postJson } from '../helpers/trip-client';

/**
 * What a saga request leaves behind, through a real Envoy: the saga log keeps only what recovery
 * needs of the request (the fixture's templates read one header, one query parameter and two body
 * fields), never a credential; SAGAMESH_LOG_REDACT fields are redacted in the log, the admin API and
 * the UI; and with SAGAMESH_ADMIN_PROTECT_CONTENTS saga contents need the admin token.
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
    // The line reaches this process through a pipe, possibly after the saga's answer.
    const lines = await waitFor(() => {
      const found = stack.sagamesh.lines().filter((l) => l.includes('"saga request"'));
      return Promise.resolve(found.length > 0 ? found : undefined);
    }, 'the saga request line');
    const text = lines.join('\n');
    for (const secret of [...secretValues, CARD, PASSPORT]) expect(text).not.toContain(secret);
    expect(sagaId).not.toBe('');
  });
});

describe('what the admin API and the UI serve of a saga', () => {
  it('redacts SAGAMESH_LOG_REDACT fields, even those recovery keeps', async () => {
    const { sagaId } = await book();
    const res = await request(`${stack.adminUrl}/sagas/${sagaId}`);
    expect(res.status).toBe(200);
    const started = (res.body.history as { type: string; request?: unknown }[]).find(
      (r) => r.type === 'saga.started',
    );
    expect(started?.request).toMatchObject({
      headers: { 'x-tenant': 't-7' },
      body: { guest: { name: 'Ada', passport: '[redacted]' }, card: { number: '[redacted]' } },
    });
    const html = await (await fetch(`${stack.adminUrl}/ui/sagas/${sagaId}`)).text();
    expect(html).toContain(sagaId);
    for (const body of [JSON.stringify(res.body), html]) {
      for (const secret of [...secretValues, CARD]) expect(body).not.toContain(secret);
    }
    // The passport reaches the UI only inside the hotel's own answer, which echoes its booking
    // request: step responses are served as recorded (docs/admin.md).
    const records = /<pre>([\s\S]*?)<\/pre>\s*<\/details>\s*<\/main>/.exec(html)?.[1] ?? '';
    const startRecord = records.slice(0, records.indexOf('call.dispatched'));
    expect(startRecord).toContain('saga.started');
    expect(startRecord).not.toContain(PASSPORT);
  });
});

describe('SAGAMESH_ADMIN_PROTECT_CONTENTS=true', () => {
  let sagaId: string;
  beforeAll(async () => {
    await stack.restartSagamesh({ SAGAMESH_ADMIN_PROTECT_CONTENTS: 'true' });
    ({ sagaId } = await book());
  });

  const get = (pathname: string, headers: Record<string, string> = {}) =>
    request(`${stack.adminUrl}${pathname}`, { headers });
  const basic = (password: string) => `Basic ${Buffer.from(`anyone:${password}`).toString('base64')}`;

  it('withholds the request and the step responses without the token; the timeline stays', async () => {
    const res = await get(`/sagas/${sagaId}`);
    expect(res.status).toBe(200);
    expect(res.body.contents).toBe('withheld');
    expect(res.body.saga).toMatchObject({ sagaId, status: 'succeeded', request: { method: 'POST' } });
    const history = res.body.history as Record<string, unknown>[];
    expect(history.find((r) => r['type'] === 'saga.started')?.['request']).toEqual({
      method: 'POST',
      path: '/bookings',
    });
    expect(history.filter((r) => 'response' in r)).toEqual([]);
    expect(JSON.stringify(res.body)).not.toContain('Porto');
  });

  it('shows them with the token, as a Bearer token or as the password of HTTP Basic', async () => {
    for (const authorization of [`Bearer ${TOKEN}`, basic(TOKEN)]) {
      const res = await get(`/sagas/${sagaId}`, { authorization });
      expect(res.body.contents).toBe('shown');
      const started = (res.body.history as { type: string; request?: unknown }[]).find(
        (r) => r.type === 'saga.started',
      );
      expect(started?.request).toMatchObject({ body: { guest: { passport: '[redacted]' } } });
    }
  });

  it('refuses a wrong token with 401', async () => {
    for (const authorization of ['Bearer wrong-token-0123456789', basic('wrong-token-0123456789')]) {
      expect(await get(`/sagas/${sagaId}`, { authorization })).toMatchObject({
        status: 401,
        body: { error: { code: 'SAGAMESH_ERR_ADMIN_UNAUTHORIZED' } },
      });
    }
  });

  it('the UI page withholds them and offers a Basic-auth prompt, never a token in the URL', async () => {
    const page = await fetch(`${stack.adminUrl}/ui/sagas/${sagaId}`);
    const html = await page.text();
    expect(page.status).toBe(200);
    expect(html).toContain(sagaId);
    expect(html).not.toContain('Porto');
    expect(html).toContain(`href="/ui/sagas/${sagaId}?contents=show"`);

    const challenge = await fetch(`${stack.adminUrl}/ui/sagas/${sagaId}?contents=show`);
    expect(challenge.status).toBe(401);
    expect(challenge.headers.get('www-authenticate')).toMatch(/^Basic realm="sagamesh admin"/);
    await challenge.text();

    const shown = await fetch(`${stack.adminUrl}/ui/sagas/${sagaId}?contents=show`, {
      headers: { authorization: basic(TOKEN) },
    });
    expect(shown.status).toBe(200);
    const shownHtml = await shown.text();
    expect(shownHtml).toContain('Porto');
    expect(shownHtml).not.toContain(CARD);
  });
});
