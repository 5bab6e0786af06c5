import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

/**
 * The tests' and the bench's throwaway PostgreSQL clusters start the same way: these say where the
 * server binaries are and whom the server must run as.
 */

/**
 * Where the PostgreSQL server binaries (initdb, postgres) are: PG_BIN, else the newest Debian
 * package under /usr/lib/postgresql (scripts/ci/install-postgres.sh and bench/setup.sh install
 * it). `hint` says how to get one.
 */
export function postgresBinDir(hint: string): string {
  const fromEnv = process.env['PG_BIN'];
  if (fromEnv) return fromEnv;
  const root = '/usr/lib/postgresql';
  const versions = fs.existsSync(root) ? fs.readdirSync(root).sort((a, b) => Number(b) - Number(a)) : [];
  for (const v of versions) {
    const dir = path.join(root, v, 'bin');
    if (fs.existsSync(path.join(dir, 'postgres'))) return dir;
  }
  throw new Error(`PostgreSQL server binaries not found: ${hint}`);
}

/**
 * PostgreSQL refuses to run as root: when we are root, the `postgres` user of the Debian package
 * to spawn initdb and the server as (`spawn`'s uid/gid; libuv drops the supplementary groups);
 * otherwise undefined, and they run as we do.
 */
export function postgresUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const id = (flag: string): number =>
    Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
  return { uid: id('-u'), gid: id('-g') };
}
