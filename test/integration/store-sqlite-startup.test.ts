import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
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

describe('PostgreSQL store at startup', () => {
  /** A port that accepts connections and never says a word: the worst a PostgreSQL URL can reach. */
  async function silentServer(): Promise<{ port: number; close: () => Promise<void> }> {
    const sockets = new Set<net.Socket>();
    const server = net.createServer((socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    return {
      port,
      close: () =>
        new Promise<void>((resolve) => {
          for (const s of sockets) s.destroy();
          server.close(() => resolve());
        }),
    };
  }

  it('exits 1 with SAGAMESH_ERR_STORE_UNAVAILABLE when the server never answers, within the connect timeout', async () => {
    const silent = await silentServer();
    try {
      const began = Date.now();
      const { code, output } = await failedStart(
        `postgres://sagamesh:secret@127.0.0.1:${silent.port}/sagamesh`,
      );
      expect(code).toBe(1);
      expectCodedFailure(output, 'SAGAMESH_ERR_STORE_UNAVAILABLE');
      expect(output).not.toContain('secret');
      // The documented connect timeout (docs/saga-log.md) is 5 s; the process exits soon after.
      expect(Date.now() - began).toBeLessThan(15_000);
    } finally {
      await silent.close();
    }
  });

  it('exits 1 with SAGAMESH_ERR_STORE_UNAVAILABLE when nothing listens', async () => {
    const silent = await silentServer();
    const { port } = silent;
    await silent.close();
    const { code, output } = await failedStart(`postgres://sagamesh@127.0.0.1:${port}/sagamesh`);
    expect(code).toBe(1);
    expectCodedFailure(output, 'SAGAMESH_ERR_STORE_UNAVAILABLE');
  });
});

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
    // Node's recursive mkdir spins forever on /proc (it never gets EEXIST or success there).
    ['a directory that cannot be created (/proc/nope/x.db)', () => '/proc/nope/x.db'],
  ])('exits 1 with SAGAMESH_ERR_STORE_UNAVAILABLE on %s, within seconds', async (_what, file) => {
    const began = Date.now();
    const { code, output } = await failedStart(`sqlite:${file()}`);
    expect(code).toBe(1);
    expectCodedFailure(output, 'SAGAMESH_ERR_STORE_UNAVAILABLE');
    expect(Date.now() - began).toBeLessThan(10_000);
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
