import { execFile } from 'node:child_process';
import path from 'node:path';
import type { Stack } from '../../demo/stack';
import { REPO_ROOT, SAGAMESH_ENTRY, startStack } from '../../demo/stack';
import { request } from '../helpers/http';

/** The built `sagamesh` executable (package.json bin): exit statuses, messages, and the admin commands. */
jest.setTimeout(60_000);

function sagamesh(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [SAGAMESH_ENTRY, ...args],
      { cwd: REPO_ROOT, env: { ...process.env, ...env } },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

describe('validate and graph', () => {
  it('exits 0 for valid definitions and 1 with file:line problems for invalid ones', async () => {
    const ok = await sagamesh(['validate', 'sagas']);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/^ok sagas\/book-trip\.yaml book-trip@[0-9a-f]{12}/m);
    const bad = await sagamesh(['validate', path.join('test', 'fixtures', 'sagas', 'many-problems')]);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(
      /^test\/fixtures\/sagas\/many-problems\/broken\.yaml:\d+:\d+ \S+ SAGAMESH_ERR_DEF_\w+ /m,
    );
    expect(bad.stderr).toMatch(
      /^sagamesh: SAGAMESH_ERR_DEFINITIONS_INVALID: saga definitions were rejected; nothing was loaded: \d+ problems \(listed on stdout\)\n$/,
    );
  });

  it('prints the state chart', async () => {
    const r = await sagamesh(['graph', 'sagas/book-trip.yaml', '--format', 'dot']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('subgraph "cluster_saga.compensating"');
  });
});

describe('list, inspect and abort through the admin API', () => {
  const TOKEN = 'cli-integration-token-0123456789';
  let stack: Stack;

  beforeAll(async () => {
    stack = await startStack({ ports: 'free', env: { SAGAMESH_ADMIN_TOKEN: TOKEN } });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('lists and inspects a saga that ran through Envoy', async () => {
    const res = await request(`${stack.ingressUrl}/trips`, {
      method: 'POST',
      body: {
        guest: 'Ada',
        hotel: { nights: 1 },
        flight: { to: 'LIS' },
        car: { class: 'compact', fault: 'fail' },
      },
    });
    expect(res.status).toBe(409);
    const sagaId = res.body.sagaId as string;
    const env = { SAGAMESH_ADMIN_ADDR: stack.adminUrl.replace('http://', '') };

    const list = await sagamesh(['list', '--status', 'compensated'], env);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(new RegExp(`^${sagaId}\\s+book-trip@[0-9a-f]{12}\\s+compensated\\s`, 'm'));

    const inspect = await sagamesh(['inspect', sagaId, '--admin', stack.adminUrl], env);
    expect(inspect.code).toBe(0);
    expect(inspect.stdout).toMatch(/^failed step car$/m);
    expect(inspect.stdout).toMatch(/^error\s+SAGAMESH_ERR_STEP_REJECTED: car: participant answered 409$/m);
    expect(inspect.stdout).toMatch(/hotel\s+compensation\s+#1\s+success\s+200/);

    const abort = await sagamesh(['abort', sagaId], { ...env, SAGAMESH_ADMIN_TOKEN: TOKEN });
    expect(abort.code).toBe(1);
    expect(abort.stderr).toBe(
      `sagamesh: SAGAMESH_ERR_SAGA_NOT_RUNNING: the saga is not running in this instance: ${sagaId} is compensated\n`,
    );

    const unreachable = await sagamesh(['list', '--admin', 'http://127.0.0.1:1']);
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toContain('SAGAMESH_ERR_ADMIN_UNREACHABLE');
  });
});
