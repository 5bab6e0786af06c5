import path from 'node:path';

/**
 * Where the saga log lives, from `SAGAMESH_STORE`:
 *   memory                              nothing survives a restart (tests, benchmarks)
 *   sqlite:<path>[?synchronous=normal]  embedded, one instance per file (the default)
 *   postgres://user:pass@host:port/db   shared by several instances, sagas owned through leases
 */
export type StoreConfig =
  | { readonly kind: 'memory' }
  | { readonly kind: 'sqlite'; readonly file: string; readonly synchronous: 'full' | 'normal' }
  | { readonly kind: 'postgres'; readonly url: string };

export const DEFAULT_STORE = 'sqlite:./data/sagamesh.db';

export function parseStoreUrl(value: string, cwd: string): StoreConfig | { readonly problem: string } {
  if (value === 'memory') return { kind: 'memory' };
  if (value.startsWith('sqlite:')) {
    const [file = '', query = ''] = value.slice('sqlite:'.length).split('?');
    if (file === '') return { problem: 'sqlite: needs a file path, e.g. sqlite:./data/sagamesh.db' };
    const sync = new URLSearchParams(query).get('synchronous') ?? 'full';
    if (sync !== 'full' && sync !== 'normal') return { problem: 'synchronous must be full or normal' };
    return { kind: 'sqlite', file: path.resolve(cwd, file), synchronous: sync };
  }
  if (value.startsWith('postgres://') || value.startsWith('postgresql://')) {
    try {
      const u = new URL(value);
      if (!u.hostname || u.pathname.length < 2)
        return { problem: 'postgres URL needs a host and a database' };
    } catch {
      return { problem: 'not a valid postgres:// URL' };
    }
    return { kind: 'postgres', url: value };
  }
  return { problem: 'must be memory, sqlite:<path> or postgres://…' };
}

/** The store for logs: never the password. */
export function describeStore(store: StoreConfig): string {
  if (store.kind === 'memory') return 'memory';
  if (store.kind === 'sqlite') return `sqlite:${store.file}`;
  const u = new URL(store.url);
  u.password = u.password ? '***' : '';
  return u.toString();
}
