import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { DEFAULT_ENVOY_PORTS } from '../../demo/envoy';
import type { Stack, StackPorts } from '../../demo/stack';
import { SAGAMESH_ENTRY, startStack } from '../../demo/stack';
import type { Bindings, DocBlock, Shape } from '../helpers/docs';
import {
  REPO_ROOT,
  allBlocks,
  consoleSteps,
  matchShown,
  parseShape,
  answerDrift,
  shapeDrift,
  substitute,
  where,
} from '../helpers/docs';
import type { JsonAnswer } from '../helpers/http';
import { request, waitFor } from '../helpers/http';

/**
 * The examples of README.md and docs/ marked `<!-- docs-test: demo-stack -->`, run against the demo
 * stack (the checked-in Envoy, sagamesh from its build, the demo services) as a reader runs them
 * against `npm start` — with the stack's free ports put in for the default ones — and the sample
 * answers of docs/admin.md's endpoint table. Shown outputs are compared by matchShown's rule
 * (test/helpers/docs.ts: volatile ids, times and durations match any of their kind, the rest
 * exactly).
 *
 * - ```console: each `$ command` runs under bash (`sagamesh` is the built bin; the shell has
 *   SAGAMESH_ADMIN_ADDR and SAGAMESH_ADMIN_TOKEN of the stack exported); what it printed, stdout
 *   and stderr as a terminal shows them, must be what the block shows.
 * - ```sh: the block runs as one bash script; a trailing comment with HTTP statuses (`# 201`,
 *   `# 503 503 201`) must be the statuses of the curl calls of that line, in order; every curl must
 *   get an answer, except one told to give up (`-m`).
 * - ```json marked `demo-stack keys: <name>`: the keys of the answer PRODUCERS[name] gets.
 */
jest.setTimeout(120_000);

const TOKEN = 'docs-example-admin-token-0123456789';
const DEFAULT_PORTS: StackPorts = { ...DEFAULT_ENVOY_PORTS, sagameshAdmin: 9090 };

let stack: Stack;

/** The stack's port for each default port a doc names (`127.0.0.1:8081` → the hotel's port). */
function withStackPorts(text: string): string {
  return text.replace(/\b(127\.0\.0\.1|localhost):(\d+)\b/g, (all, host: string, port: string) => {
    const key = (Object.keys(DEFAULT_PORTS) as (keyof StackPorts)[]).find(
      (k) => DEFAULT_PORTS[k] === Number(port),
    );
    return key ? `${host}:${stack.ports[key]}` : all;
  });
}

function bash(script: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      'bash',
      ['-c', script],
      {
        cwd: REPO_ROOT,
        env: {
          ...process.env,
          SAGAMESH_ADMIN_ADDR: `127.0.0.1:${stack.ports.sagameshAdmin}`,
          SAGAMESH_ADMIN_TOKEN: TOKEN,
        },
        maxBuffer: 16 * 1024 * 1024,
      },
      (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
  });
}

const SAGAMESH_FN = `sagamesh() { ${JSON.stringify(process.execPath)} ${JSON.stringify(SAGAMESH_ENTRY)} "$@"; }\n`;

async function runConsole(block: DocBlock): Promise<void> {
  let bindings: Bindings = new Map();
  for (const step of consoleSteps(block.text)) {
    const command = withStackPorts(substitute(step.command, bindings));
    const { stdout } = await bash(`${SAGAMESH_FN}exec 2>&1\n${command}`);
    const shown = withStackPorts(step.shown);
    const matched = matchShown(shown, stdout, bindings);
    if (!matched) expect(`$ ${command}\n${stdout}`).toBe(`$ ${command}\n${shown}`);
    bindings = matched ?? bindings;
  }
}

/** Joins `\`-continued lines: one entry per command line of a shell block. */
function logicalLines(text: string): string[] {
  const out: string[] = [];
  let current = '';
  for (const line of text.split('\n')) {
    current += current ? `\n${line}` : line;
    if (!/\\$/.test(line)) {
      out.push(current);
      current = '';
    }
  }
  if (current) out.push(current);
  return out;
}

async function runShell(block: DocBlock): Promise<void> {
  const lines = logicalLines(withStackPorts(block.text));
  const script = [
    `curl() { command curl -w '%{stderr}@@status %{http_code}\\n' "$@"; }`,
    ...lines.map((l, i) => `echo "@@line ${i}" >&2\n${l}`),
  ].join('\n');
  const { stderr } = await bash(script);
  const statuses = new Map<number, string[]>();
  let current = -1;
  for (const line of stderr.split('\n')) {
    const at = /^@@line (\d+)$/.exec(line);
    if (at) current = Number(at[1]);
    const status = /@@status (\d+)$/.exec(line);
    if (status) statuses.set(current, [...(statuses.get(current) ?? []), status[1] ?? '']);
  }
  const claims = lines.map((l, i) => {
    const comment = /\s#\s([^\n]*)$/.exec(l)?.[1] ?? '';
    const got = statuses.get(i) ?? [];
    const claimed = comment.match(/\b[1-5]\d\d\b/g) ?? [];
    const gaveUp = /\s-m\s/.test(l);
    return {
      line: l.split('\n')[0],
      claimed,
      got: claimed.length > 0 ? got : got.filter((s) => s === '000' && !gaveUp),
    };
  });
  expect(claims).toEqual(claims.map((c) => ({ ...c, got: c.claimed })));
}

const stackBlocks = allBlocks().filter((b) => /^demo-stack\b/.test(b.mark ?? ''));
const cases = (lang: string): [string, DocBlock][] =>
  stackBlocks.filter((b) => b.lang === lang).map((b) => [where(b), b]);

/**
 * A plan-itinerary saga that gets stuck (its flight is refused, its hotel cannot be cancelled): its
 * answer is errors.md's stuck saga, and admin.md's retry is tried on it. (Not a book-trip saga: the
 * cli.md session lists book-trip's stuck sagas and shows one.)
 */
const STUCK_ITINERARY = {
  guest: 'Ada',
  hotel: { nights: 2, fault: 'cancel-fail' },
  flight: { to: 'LIS', fault: 'fail' },
};
let stuck: Promise<JsonAnswer>;

beforeAll(async () => {
  stack = await startStack({ ports: 'free', env: { SAGAMESH_ADMIN_TOKEN: TOKEN } });
  // Its ten undo attempts take about 30 s: they run while the console examples do.
  stuck = request(`${stack.ingressUrl}/itineraries`, { method: 'POST', body: STUCK_ITINERARY });
});
afterAll(async () => {
  await stuck?.catch(() => undefined);
  await stack?.stop();
});

it('has examples to run', () => {
  expect(stackBlocks.map((b) => b.file)).toEqual(expect.arrayContaining(['docs/cli.md', 'docs/demo.md']));
  const runnable = (b: DocBlock): boolean =>
    b.mark === 'demo-stack' ? b.lang === 'console' || b.lang === 'sh' : b.lang === 'json';
  expect(stackBlocks.filter((b) => !runnable(b)).map(where)).toEqual([]);
});

describe('console sessions against the demo stack', () => {
  it.each(cases('console'))('%s', (_where, block) => runConsole(block));
});

/** docs/admin.md's endpoint table: the sample answers it shows, against the real endpoints. */
describe('docs/admin.md sample answers', () => {
  const doc = fs.readFileSync(path.join(REPO_ROOT, 'docs', 'admin.md'), 'utf8');
  /** The status and the answer's shape a row of the endpoint table shows. */
  const sample = (endpoint: string): { status: number; shape: Shape } => {
    const line = doc.split('\n').find((l) => l.startsWith(`| \`${endpoint}`));
    const cell = line?.split('|')[2] ?? '';
    const spans = [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1] ?? '');
    // `202 { … }` is an answer with its status. A GET row's answer may also be its first `200`-like
    // span and its first `{ … }` span; a POST row's other `{ … }` spans are request bodies.
    const answered = spans.find((s) => /^\d{3} \{/.test(s));
    const status = Number((answered ?? spans.find((s) => /^\d{3}$/.test(s)) ?? '200').slice(0, 3));
    const body =
      answered?.slice(4) ?? (endpoint.startsWith('GET ') ? spans.find((s) => s.startsWith('{')) : undefined);
    if (!line || !body) throw new Error(`docs/admin.md: no sample answer for ${endpoint}`);
    return { status, shape: parseShape(body) };
  };
  const check = (endpoint: string, res: JsonAnswer): void => {
    const { status, shape } = sample(endpoint);
    expect({ status: res.status, drift: shapeDrift(shape, res.body) }).toEqual({ status, drift: [] });
  };
  const admin = (p: string, method = 'GET'): Promise<JsonAnswer> =>
    request(`${stack.adminUrl}${p}`, {
      method,
      ...(method === 'POST' ? { headers: { authorization: `Bearer ${TOKEN}` }, body: {} } : {}),
    });

  it('GET /healthz and GET /readyz', async () => {
    check('GET /healthz', await admin('/healthz'));
    check('GET /readyz', await admin('/readyz'));
  });

  it('GET /sagas, GET /sagas/{id} and POST /sagas/{id}/retry of a stuck saga', async () => {
    const answer = await stuck;
    expect(answer.body).toMatchObject({ status: 'stuck' });
    const sagaId = answer.body.sagaId as string;
    check('GET /sagas?', await admin('/sagas?status=stuck&definition=plan-itinerary'));
    check('GET /sagas/{id}', await admin(`/sagas/${sagaId}`));
    check('POST /sagas/{id}/retry', await admin(`/sagas/${sagaId}/retry`, 'POST'));
  });

  it('POST /sagas/{id}/abort of a running saga', async () => {
    const slow = request(`${stack.ingressUrl}/trips`, {
      method: 'POST',
      body: { guest: 'Ada', hotel: { fault: 'slow:1500' }, flight: {}, car: {} },
    });
    const running = await waitFor(async () => {
      const list = await admin('/sagas?status=running&definition=book-trip');
      return (list.body.sagas as { sagaId: string }[])[0];
    }, 'a running saga');
    check('POST /sagas/{id}/abort', await admin(`/sagas/${running.sagaId}/abort`, 'POST'));
    expect((await slow).status).toBe(409);
  });
});

/**
 * The real answers that JSON blocks marked `demo-stack keys: <name>` show: the block must have
 * exactly the keys of the answer (values there are examples or say where they come from).
 */
const PRODUCERS: Readonly<Record<string, () => Promise<unknown>>> = {
  'a cancelled booking': async () => {
    // through a saga, so it carries the saga's headers (traceparent only when the client sent one);
    // the failing car step cancels it
    const trip = { guest: 'Ada', hotel: { nights: 2 }, flight: { to: 'LIS' }, car: { fault: 'fail' } };
    const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    const answer = await request(`${stack.ingressUrl}/trips`, {
      method: 'POST',
      headers: { traceparent },
      body: trip,
    });
    expect(answer.status).toBe(409);
    const { body } = await request(`http://127.0.0.1:${stack.ports.hotel}/bookings`);
    return (body.bookings as { sagaId?: string }[]).find((b) => b.sagaId === answer.body.sagaId);
  },
  'the trips echo': async () =>
    (await request(`http://127.0.0.1:${stack.ports.trips}/trips?x=1`, { method: 'POST', body: {} }))
      .body as unknown,
};

describe('JSON answers against the demo stack: their keys', () => {
  const keyed = stackBlocks.filter((b) => b.mark?.startsWith('demo-stack keys: '));
  it.each(keyed.map((b): [string, DocBlock] => [where(b), b]))('%s', async (_where, block) => {
    const name = block.mark?.slice('demo-stack keys: '.length) ?? '';
    const produce = PRODUCERS[name];
    if (!produce) throw new Error(`${where(block)}: no producer '${name}' in this test`);
    const shown = Object.keys(JSON.parse(block.text) as object).sort();
    expect(Object.keys((await produce()) as object).sort()).toEqual(shown);
  });
});

/** The answers that JSON blocks marked `demo-stack answer: <name>` show in full, value for value. */
const ANSWERS: Readonly<Record<string, () => Promise<JsonAnswer>>> = {
  'a refused trip': () =>
    request(`${stack.ingressUrl}/trips`, { method: 'POST', body: { guest: 'Ada', hotel: {}, flight: {} } }),
  'a compensated trip': () =>
    request(`${stack.ingressUrl}/trips`, {
      method: 'POST',
      body: { guest: 'Ada', hotel: { nights: 2 }, flight: { to: 'LIS' }, car: { fault: 'fail' } },
    }),
  'a stuck itinerary': () => stuck,
};

describe('JSON answers against the demo stack: in full', () => {
  const full = stackBlocks.filter((b) => b.mark?.startsWith('demo-stack answer: '));
  it.each(full.map((b): [string, DocBlock] => [where(b), b]))('%s', async (_where, block) => {
    const name = block.mark?.slice('demo-stack answer: '.length) ?? '';
    const produce = ANSWERS[name];
    if (!produce) throw new Error(`${where(block)}: no answer '${name}' in this test`);
    const { body } = await produce();
    expect(answerDrift(block.text, body)).toEqual([]);
  });
});

describe('shell examples against the demo stack', () => {
  beforeEach(() => {
    for (const p of Object.values(stack.participants)) p.reset();
    stack.app.reset();
  });
  it.each(cases('sh'))('%s', (_where, block) => runShell(block));
});
