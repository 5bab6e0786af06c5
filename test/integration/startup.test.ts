import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSagamesh } from '../../demo/stack';

/** sagamesh refuses to start on bad input, lists every problem, and exits non-zero. */
jest.setTimeout(30_000);

function sagasDir(files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sagamesh-sagas-'));
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
  return dir;
}

async function failedStart(env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  const { process: sagamesh, ready } = spawnSagamesh({
    SAGAMESH_GRPC_ADDR: '127.0.0.1:0',
    SAGAMESH_STORE: 'memory',
    ...env,
  });
  await expect(ready).rejects.toThrow(/sagamesh exited/);
  const code = await sagamesh.exited;
  return { code, output: sagamesh.lines().join('\n') };
}

const validSteps = `
  steps:
    - name: hotel
      action:
        request: { method: POST, url: http://hotel/bookings }
`;

describe('sagamesh startup', () => {
  it('lists every problem of every invalid saga file with file:line and exits 1', async () => {
    const dir = sagasDir({
      'a.yaml': `apiVersion: sagamesh.dev/v1alpha1
kind: Saga
metadata: { name: a }
spec:
  match: { method: POST, path: /a }
  deadline: soon
  steps:
    - name: hotel
      action:
        request: { method: POST, url: "http://\${request.body.host}/x" }
`,
      'b.yaml': `apiVersion: sagamesh.dev/v1alpha1
kind: Saga
metadata: { name: b }
spec:
  match: { method: POST, path: /b }
  respond: sometimes
${validSteps}`,
    });
    const { code, output } = await failedStart({ SAGAMESH_SAGAS_DIR: dir });
    expect(code).toBe(1);
    expect(output).toContain('SAGAMESH_ERR_DEFINITIONS_INVALID');
    expect(output).toMatch(/a\.yaml:6:\d+ spec\.deadline SAGAMESH_ERR_DEF_SCHEMA/);
    expect(output).toMatch(/a\.yaml:10:\d+ spec\.steps\[0\]\.action\.request\.url SAGAMESH_ERR_DEF_URL/);
    expect(output).toMatch(/b\.yaml:6:\d+ spec\.respond SAGAMESH_ERR_DEF_SCHEMA/);
  });

  it('refuses a saga file past the size limit unread, with the problems of the other files', async () => {
    const dir = sagasDir({
      'a.yaml': `apiVersion: sagamesh.dev/v1alpha1
kind: Saga
metadata: { name: a }
spec:
  match: { method: POST, path: /a }
${validSteps}# ${'x'.repeat(300 * 1024)}
`,
      'b.yaml': `apiVersion: sagamesh.dev/v1alpha1
kind: Saga
metadata: { name: b }
spec:
  match: { method: POST, path: /b }
  respond: sometimes
${validSteps}`,
    });
    const { code, output } = await failedStart({ SAGAMESH_SAGAS_DIR: dir });
    expect(code).toBe(1);
    expect(output).toMatch(/a\.yaml:1:1 SAGAMESH_ERR_DEF_TOO_LARGE the file holds \d+ bytes/);
    expect(output).toMatch(/b\.yaml:6:\d+ spec\.respond SAGAMESH_ERR_DEF_SCHEMA/);
  });

  it('reports every invalid setting at once', async () => {
    const { code, output } = await failedStart({
      SAGAMESH_EGRESS_URL: 'ftp://x',
      SAGAMESH_LOG_LEVEL: 'loud',
    });
    expect(code).toBe(1);
    expect(output).toContain('SAGAMESH_ERR_CONFIG_INVALID');
    expect(output).toContain('SAGAMESH_EGRESS_URL=ftp://x');
    expect(output).toContain('SAGAMESH_LOG_LEVEL=loud');
  });

  it('fails clearly when the sagas directory does not exist', async () => {
    const { code, output } = await failedStart({ SAGAMESH_SAGAS_DIR: '/nonexistent/sagas' });
    expect(code).toBe(1);
    expect(output).toContain('SAGAMESH_ERR_SAGAS_DIR_UNREADABLE');
  });
});
