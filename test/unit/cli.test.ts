import path from 'node:path';
import pino from 'pino';
import { createAdmin } from '../../src/admin/admin';
import { Metrics } from '../../src/admin/metrics';
import { Secret } from '../../src/config/secret';
import type { ConfigOverrides } from '../../src/config/config';
import type { Serve } from '../../src/cli/program';
import { runCli } from '../../src/cli/program';
import type { CliIo } from '../../src/cli/io';
import { DefinitionSet } from '../../src/definition/definition-set';
import { MemorySagaLog } from '../../src/saga-log/memory';

/** The CLI in-process: exit statuses, messages, and the admin commands against a real admin server. */

const REPO = path.join(__dirname, '..', '..');
const FIXTURES = path.join(REPO, 'test', 'fixtures', 'sagas');

async function cli(argv: string[], env: NodeJS.ProcessEnv = {}, serve: Serve = () => Promise.resolve(0)) {
  let stdout = '';
  let stderr = '';
  const io: CliIo = { stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t), env, cwd: REPO };
  const code = await runCli(argv, io, serve);
  return { code, stdout, stderr, serve };
}

describe('sagamesh validate', () => {
  it('exits 0 and names every valid saga', async () => {
    const r = await cli(['validate', 'sagas']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^ok sagas\/book-trip\.yaml book-trip@[0-9a-f]{12} \(POST \/trips, 3 steps\)$/m);
    expect(r.stdout).toMatch(/^ok sagas\/plan-itinerary\.yaml plan-itinerary@/m);
    expect(r.stderr).toBe('');
  });

  it('exits 1 and prints every problem of every file with file:line:column, field path and code', async () => {
    const r = await cli(['validate', 'sagas/book-trip.yaml', path.join(FIXTURES, 'two-bad-files')]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^ok sagas\/book-trip\.yaml book-trip@/m);
    expect(r.stdout).toMatch(
      /^test\/fixtures\/sagas\/two-bad-files\/a\.yaml:8:\d+ spec\.steps\[0\]\.dependsOn SAGAMESH_ERR_DEF_CYCLE /m,
    );
    expect(r.stdout).toMatch(
      /^test\/fixtures\/sagas\/two-bad-files\/b\.yml:5:\d+ spec\.match\.method SAGAMESH_ERR_DEF_SCHEMA /m,
    );
    expect(r.stderr).toBe(
      'sagamesh: SAGAMESH_ERR_DEFINITIONS_INVALID: saga definitions were rejected; nothing was loaded: 3 problems (listed on stdout)\n',
    );
  });

  it('checks a directory the way the server loads it: duplicates across files', async () => {
    const r = await cli(['validate', path.join(FIXTURES, 'duplicates')]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('SAGAMESH_ERR_DEF_DUPLICATE');
  });

  it('exits 1 with a coded error for a path that does not exist, and goes on with the others', async () => {
    const r = await cli(['validate', 'no/such/file.yaml', 'sagas/book-trip.yaml']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('sagamesh: SAGAMESH_ERR_SAGAS_DIR_UNREADABLE: ');
    expect(r.stderr).toContain('no/such/file.yaml');
    expect(r.stdout).toMatch(/^ok sagas\/book-trip\.yaml/m);
  });

  it('applies the configured maximum deadline', async () => {
    const r = await cli(['validate', 'sagas/book-trip.yaml', '--max-deadline-ms', '5000']);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(
      /book-trip\.yaml:\d+:\d+ spec\.deadline SAGAMESH_ERR_DEF_DEADLINE 10s exceeds the maximum of 5s/,
    );
    expect((await cli(['validate', 'sagas/book-trip.yaml'], { SAGAMESH_MAX_DEADLINE_MS: '5000' })).code).toBe(
      1,
    );
  });

  it('takes the maximum deadline in the range the server accepts, so both agree', async () => {
    const r = await cli(['validate', 'sagas/book-trip.yaml', '--max-deadline-ms', '6000000000']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      "sagamesh: SAGAMESH_ERR_CLI_USAGE: the command line is invalid: option '--max-deadline-ms <ms>' argument '6000000000' is invalid. must be an integer from 100 to 3600000\n" +
        "  see 'sagamesh validate --help'\n",
    );
    expect((await cli(['validate', 'sagas/book-trip.yaml', '--max-deadline-ms', '3600000'])).code).toBe(0);
  });
});

describe('sagamesh graph', () => {
  it('prints the mermaid state chart by default and dot on request', async () => {
    const mermaid = await cli(['graph', 'sagas/book-trip.yaml']);
    expect(mermaid.code).toBe(0);
    expect(mermaid.stdout).toMatch(/^stateDiagram-v2\n/);
    expect(mermaid.stdout).toContain('running --> compensating : saga.abort');
    const dot = await cli(['graph', 'sagas/book-trip.yaml', '--format', 'dot']);
    expect(dot.stdout).toMatch(/^digraph "saga" \{/);
    const json = await cli(['graph', 'sagas/plan-itinerary.yaml', '--format', 'json']);
    expect(JSON.parse(json.stdout)).toMatchObject({ id: 'saga', type: 'compound' });
  });

  it('exits 1 with every problem for an invalid file, and for an unknown format', async () => {
    const bad = await cli(['graph', path.join(FIXTURES, 'two-bad-files', 'b.yml')]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('SAGAMESH_ERR_DEFINITIONS_INVALID');
    expect(bad.stderr).toMatch(/b\.yml:5:\d+ spec\.match\.method SAGAMESH_ERR_DEF_SCHEMA/);
    const format = await cli(['graph', 'sagas/book-trip.yaml', '--format', 'png']);
    expect(format.code).toBe(1);
    expect(format.stdout).toBe('');
    expect(format.stderr).toBe(
      "sagamesh: SAGAMESH_ERR_CLI_USAGE: the command line is invalid: option '--format <format>' argument 'png' is invalid. Allowed choices are mermaid, dot, json.\n" +
        "  see 'sagamesh graph --help'\n",
    );
  });
});

describe('sagamesh serve and usage', () => {
  it('passes its flags to the server as configuration overrides', async () => {
    const serve = jest.fn((_flags: ConfigOverrides) => Promise.resolve(0));
    const r = await cli(
      ['serve', '--sagas-dir', 'x', '--admin-addr', '127.0.0.1:0', '--log-level', 'warn'],
      {},
      serve,
    );
    expect(r.code).toBe(0);
    expect(serve).toHaveBeenCalledWith({ sagasDir: 'x', adminAddress: '127.0.0.1:0', logLevel: 'warn' });
  });

  it('exits 1 with a coded usage error for an unknown command, option, missing argument or none at all', async () => {
    const usage = (message: string, help = 'sagamesh --help'): string =>
      `sagamesh: SAGAMESH_ERR_CLI_USAGE: the command line is invalid: ${message}\n  see '${help}'\n`;
    expect(await cli(['frobnicate'])).toMatchObject({
      code: 1,
      stdout: '',
      stderr: usage("unknown command 'frobnicate'"),
    });
    expect(await cli(['lst'])).toMatchObject({
      code: 1,
      stderr: usage("unknown command 'lst'\n(Did you mean list?)"),
    });
    expect(await cli(['list', '--bogus'])).toMatchObject({
      code: 1,
      stderr: usage("unknown option '--bogus'", 'sagamesh list --help'),
    });
    expect(await cli(['validate'])).toMatchObject({
      code: 1,
      stderr: usage("missing required argument 'paths'", 'sagamesh validate --help'),
    });
    expect(await cli([])).toMatchObject({ code: 1, stdout: '', stderr: usage('a command is needed') });
  });

  it('reports an unexpected failure coded as SAGAMESH_ERR_INTERNAL', async () => {
    const r = await cli(['serve'], {}, () => Promise.reject(new Error('boom')));
    expect(r).toMatchObject({ code: 1, stderr: 'sagamesh: SAGAMESH_ERR_INTERNAL: internal error: boom\n' });
  });

  it('exits 0 for --help, on stdout', async () => {
    const help = await cli(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('validate [options] <paths...>');
    expect(help.stderr).toBe('');
    expect((await cli(['graph', '--help'])).stdout).toContain('Usage: sagamesh graph [options] <file>');
  });
});

describe('sagamesh list, inspect, abort, retry', () => {
  const TOKEN = 'unit-test-token-0123456789';
  const log = new MemorySagaLog({
    now: () => 1_700_000_000_000,
    setTimeout,
    clearTimeout: (id) => clearTimeout(id as NodeJS.Timeout),
  });
  const operations = {
    abort: jest.fn(() => true),
    retry: jest.fn(() => Promise.resolve('not-stuck' as const)),
  };
  const admin = createAdmin({
    config: { adminAddress: '127.0.0.1:0', adminToken: new Secret(TOKEN) },
    logger: pino({ level: 'silent' }),
    clock: { now: () => 1_700_000_001_000, setTimeout, clearTimeout: () => undefined },
    metrics: new Metrics({ inFlight: () => 0, definitionsLoaded: () => 0, processMetrics: false }),
    sagaLog: log,
    operations,
    definitions: () => new DefinitionSet([]),
  });
  let url = '';

  beforeAll(async () => {
    url = `http://127.0.0.1:${await admin.listen()}`;
    await log.append('s-1', {
      type: 'saga.started',
      definition: 'book-trip',
      version: 'abcdef123456',
      request: { method: 'POST', path: '/trips', query: {}, headers: {}, body: {} },
    });
    await log.append('s-1', {
      type: 'call.dispatched',
      step: 'hotel',
      kind: 'action',
      attempt: 1,
      replay: false,
    });
    await log.append('s-1', {
      type: 'call.completed',
      step: 'hotel',
      kind: 'action',
      attempt: 1,
      replay: false,
      outcome: 'success',
      status: 201,
    });
    await log.append('s-1', { type: 'saga.finished', status: 'succeeded' });
  });
  afterAll(() => admin.close());

  it('lists sagas as a table, or as JSON', async () => {
    const r = await cli(['list', '--admin', url, '--status', 'succeeded']);
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')[0]).toMatch(/^SAGA\s+DEFINITION\s+STATUS\s+STARTED \(UTC\)\s+TOOK$/);
    expect(r.stdout).toMatch(/^s-1\s+book-trip@abcdef123456\s+succeeded\s+2023-11-14 22:13:20Z\s+0 ms$/m);
    const json = await cli(['list', '--json'], { SAGAMESH_ADMIN_ADDR: url.replace('http://', '') });
    // the API's answer as it came, so a script reads `.sagas` from the CLI and the API alike
    expect(JSON.parse(json.stdout)).toEqual({ sagas: [expect.objectContaining({ sagaId: 's-1' })] });
  });

  it('inspects a saga: facts and every call', async () => {
    const r = await cli(['inspect', 's-1', '--admin', url]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^definition\s+book-trip@abcdef123456$/m);
    expect(r.stdout).toMatch(/^status\s+succeeded$/m);
    expect(r.stdout).toMatch(/^\+0 ms\s+hotel\s+action\s+#1\s+success\s+201/m);
  });

  it('inspects a nested saga: its parent, and its children as a tree as far as this log holds them', async () => {
    const started = (definition: string, parent?: { sagaId: string; step: string }) => ({
      type: 'saga.started' as const,
      definition,
      version: 'abcdef123456',
      request: { method: 'POST', path: '/x', query: {}, headers: {}, body: {} },
      ...(parent ? { parent } : {}),
    });
    const answered = (step: string, child: string) => ({
      type: 'call.completed' as const,
      step,
      kind: 'action' as const,
      attempt: 1,
      replay: false,
      outcome: 'success',
      status: 201,
      response: { status: 201, headers: { 'x-sagamesh-saga-id': child }, body: {} },
    });
    await log.append('top', started('agency'));
    await log.append('top', answered('tour', 'mid'));
    await log.append('top', answered('extra', 'elsewhere'));
    await log.append('mid', started('tour', { sagaId: 'top', step: 'tour' }));
    await log.append('mid', answered('trip', 'leaf'));
    await log.append('mid', { type: 'saga.finished', status: 'succeeded' });
    await log.append('leaf', started('book-trip', { sagaId: 'mid', step: 'trip' }));
    const r = await cli(['inspect', 'top', '--admin', url]);
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n').filter((l) => l.startsWith('child'))).toEqual([
      'child       mid (step tour) tour succeeded',
      'child         leaf (step trip) book-trip running',
      "child       elsewhere (step extra; in another sagamesh's log)",
    ]);
    const leaf = await cli(['inspect', 'leaf', '--admin', url]);
    expect(leaf.stdout).toMatch(/^parent\s+mid \(step trip\)$/m);
  });

  it('orders calls and marks of one millisecond as they happened: compensating, the undo, the end', async () => {
    const call = { step: 'hotel', attempt: 1, replay: false } as const;
    await log.append('s-2', {
      type: 'saga.started',
      definition: 'book-trip',
      version: 'abcdef123456',
      request: { method: 'POST', path: '/trips', query: {}, headers: {}, body: {} },
    });
    await log.append('s-2', { type: 'call.dispatched', kind: 'action', ...call });
    await log.append('s-2', {
      type: 'call.completed',
      kind: 'action',
      ...call,
      outcome: 'success',
      status: 201,
    });
    await log.append('s-2', {
      type: 'saga.compensating',
      failedStep: 'car',
      error: { code: 'SAGAMESH_ERR_STEP_REJECTED', message: 'car: participant answered 409' },
    });
    await log.append('s-2', { type: 'call.dispatched', kind: 'compensation', ...call });
    await log.append('s-2', {
      type: 'call.completed',
      kind: 'compensation',
      ...call,
      outcome: 'success',
      status: 200,
    });
    await log.append('s-2', { type: 'saga.finished', status: 'compensated' });
    const r = await cli(['inspect', 's-2', '--admin', url]);
    const rows = r.stdout.split('\n').filter((l) => l.startsWith('+'));
    expect(
      rows.map((l) =>
        l
          .split(/\s{2,}/)
          .slice(1, 3)
          .join(' '),
      ),
    ).toEqual(['hotel action', '— compensating', 'hotel compensation', '— compensated']);
  });

  it('says when the admin withholds saga contents (SAGAMESH_ADMIN_PROTECT_CONTENTS), and shows them with the token', async () => {
    const guarded = createAdmin({
      config: { adminAddress: '127.0.0.1:0', adminToken: new Secret(TOKEN), adminProtectContents: true },
      logger: pino({ level: 'silent' }),
      clock: { now: () => 1_700_000_001_000, setTimeout, clearTimeout: () => undefined },
      metrics: new Metrics({ inFlight: () => 0, definitionsLoaded: () => 0, processMetrics: false }),
      sagaLog: log,
      operations,
      definitions: () => new DefinitionSet([]),
    });
    const guardedUrl = `http://127.0.0.1:${await guarded.listen()}`;
    try {
      const without = await cli(['inspect', 's-1', '--admin', guardedUrl]);
      expect(without.stdout).toMatch(/^contents\s+withheld/m);
      const json = await cli(['inspect', 's-1', '--json', '--admin', guardedUrl, '--token', TOKEN]);
      expect(JSON.parse(json.stdout)).toMatchObject({ contents: 'shown' });
      expect((await cli(['inspect', 's-1', '--admin', url])).stdout).not.toMatch(/^contents/m);
    } finally {
      await guarded.close();
    }
  });

  it('exits 1 with the server code for an unknown saga, a refused action or bad filters', async () => {
    const missing = await cli(['inspect', 'nope', '--admin', url]);
    expect(missing).toMatchObject({
      code: 1,
      stderr: 'sagamesh: SAGAMESH_ERR_SAGA_NOT_FOUND: no such saga: nope\n',
    });
    const noToken = await cli(['abort', 's-1', '--admin', url]);
    expect(noToken.code).toBe(1);
    expect(noToken.stderr).toContain('SAGAMESH_ERR_ADMIN_UNAUTHORIZED');
    const filters = await cli(['list', '--admin', url, '--limit', '0']);
    expect(filters.stderr).toContain('SAGAMESH_ERR_ADMIN_BAD_REQUEST');
  });

  it('aborts and retries with the token from the flag or the environment', async () => {
    const aborted = await cli(['abort', 's-1', '--admin', url, '--token', TOKEN, '--reason', 'test']);
    expect(aborted).toMatchObject({ code: 0, stdout: 's-1: aborting\n' });
    expect(operations.abort).toHaveBeenCalledWith('s-1', 'test');
    const retried = await cli(['retry', 's-1', '--admin', url], { SAGAMESH_ADMIN_TOKEN: TOKEN });
    expect(retried.code).toBe(1);
    expect(retried.stderr).toContain('SAGAMESH_ERR_SAGA_NOT_STUCK');
  });

  it('says so when the admin API cannot be reached', async () => {
    const r = await cli(['list', '--admin', 'http://127.0.0.1:1']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('sagamesh: SAGAMESH_ERR_ADMIN_UNREACHABLE: ');
  });
});
