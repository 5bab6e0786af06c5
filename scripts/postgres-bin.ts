import fs from 'node:fs';
import path from 'node:path';

/**
 * Where the PostgreSQL server binaries (initdb, postgres) are, for the tests' and the bench's
 * throwaway clusters: PG_BIN, else the newest Debian package under /usr/lib/postgresql
 * (scripts/ci/install-postgres.sh and bench/setup.sh install it). `hint` says how to get one.
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
