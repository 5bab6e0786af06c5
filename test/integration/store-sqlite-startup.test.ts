import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import type { SagameshProcess } from '../../demo/stack';
import { spawnSagamesh } from '../../demo/stack';

/**
 * sagamesh on a store it cannot use: it says why with a coded error and exits 1, once — no
 * stack trace as the only output, no retry loop, and it never "repairs" a file by overwriting it.
 */
jest.setTimeout(30_000);

const running: SagameshProcess[] = [];

afterEach(async () => {
  await Promise.all(running.splice(0).map((p) => p.stop()));
});

const tempDir = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'sagamesh-store-test-'));

function start(store: string): ReturnType<typeof spawnSagamesh> {
  const spawned = spawnSagamesh({
    SAGAMESH_STORE: store,
    SAGAMESH_GRPC_ADDR: '127.0.0.1:0',
    SAGAMESH_ADMIN_ADDR: '127.0.0.1:0',
  });
  running.push(spawned.process);
  return spawned;
}

async function failedStart(store: string): Promise<{ code: number | null; output: string }> {
  const { process: sagamesh, ready } = start(store);
  await expect(ready).rejects.toThrow(/sagamesh exited/);
  const code = await sagamesh.exited;
  return { code, output: sagamesh.lines().join('\n') };
}

/** A coded, one-line reason on stderr, not a bare stack trace. */
function expectCodedFailure(output: string, code: string): void {
  expect(output).toMatch(new RegExp(`^sagamesh: ${code}: `, 'm'));
  expect(output).not.toMatch(/^\s+at /m);
}

describe('SQLite store at startup', () => {
  it('exits 1 with SAGAMESH_ERR_STORE_CORRUPT on a file of garbage, and leaves the file alone', async () => {
    const file = path.join(tempDir(), 'sagamesh.db');
    const garbage = randomBytes(8192);
    fs.writeFileSync(file, garbage);
    const { code, output } = await failedStart(`sqlite:${file}`);
    expect(code).toBe(1);
    expectCodedFailure(output, 'SAGAMESH_ERR_STORE_CORRUPT');
    expect(output).toContain(file);
    expect(fs.readFileSync(file).equals(garbage)).toBe(true);
  });

  it('exits 1 with SAGAMESH_ERR_STORE_CORRUPT on a store written by a newer sagamesh', async () => {
    const file = path.join(tempDir(), 'sagamesh.db');
    const db = new Database(file);
    db.exec('CREATE TABLE sagamesh_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)');
    db.prepare('INSERT INTO sagamesh_migrations VALUES (?, ?)').run(99, Date.now());
    db.close();
    const { code, output } = await failedStart(`sqlite:${file}`);
    expect(code).toBe(1);
    expectCodedFailure(output, 'SAGAMESH_ERR_STORE_CORRUPT');
    expect(output).toContain('schema version 99');
  });

  it.each([
    ['a path under a file (/dev/null/x.db)', () => '/dev/null/x.db'],
    ['a directory', () => tempDir()],
  ])('exits 1 with SAGAMESH_ERR_STORE_UNAVAILABLE on %s', async (_what, file) => {
    const { code, output } = await failedStart(`sqlite:${file()}`);
    expect(code).toBe(1);
    expectCodedFailure(output, 'SAGAMESH_ERR_STORE_UNAVAILABLE');
  });

  it('refuses a second sagamesh on the same file; the first keeps running', async () => {
    const file = path.join(tempDir(), 'sagamesh.db');
    const first = start(`sqlite:${file}`);
    await first.ready;
    const { code, output } = await failedStart(`sqlite:${file}`);
    expect(code).toBe(1);
    expectCodedFailure(output, 'SAGAMESH_ERR_STORE_UNAVAILABLE');
    expect(output).toContain('in use by another sagamesh instance');
    // The first instance was not disturbed: still up, and it stops cleanly.
    expect(first.process.lines().some((l) => l.includes('"level":"error"'))).toBe(false);
    expect(await first.process.stop()).toBe(0);

    // Once the first is gone, the file is usable again.
    const again = start(`sqlite:${file}`);
    await again.ready;
    expect(await again.process.stop()).toBe(0);
  });
});
