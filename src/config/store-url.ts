import path from 'node:path';

/**
 * Where the saga log lives, from `SAGAMESH_STORE`:
 *   memory                              nothing survives a restart (tests, benchmarks)
 *   sqlite:<path>[?synchronous=normal]  embedded, one instance per file (the default)
 *   postgres://user:pass@host:port/db   shared by several instances, sagas owned through leases
 *   etcd://[user:pass@]host:port[,host:port…][?prefix=…&ca=…&cert=…&key=…]
 *                                       shared by several instances on a Raft-replicated etcd v3,
 *                                       sagas owned through leases; ca/cert/key are PEM files
 */
export type StoreConfig =
  | { readonly kind: 'memory' }
  | { readonly kind: 'sqlite'; readonly file: string; readonly synchronous: 'full' | 'normal' }
  | { readonly kind: 'postgres'; readonly url: string }
  | EtcdStoreConfig;

export interface EtcdStoreConfig {
  readonly kind: 'etcd';
  /** host:port of each member. */
  readonly endpoints: readonly string[];
  /** Every key sagamesh writes starts with it, so several deployments can share one etcd. */
  readonly prefix: string;
  readonly user?: string;
  readonly password?: string;
  /** PEM files: the CA that signed the members' certificates; a client certificate and its key. */
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
}

export const DEFAULT_ETCD_PREFIX = '/sagamesh/';

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
  if (value.startsWith('etcd://')) return parseEtcdUrl(value, cwd);
  return { problem: 'must be memory, sqlite:<path>, postgres://… or etcd://…' };
}

/** etcd://[user:pass@]host:port[,host:port…][?prefix=…&ca=…&cert=…&key=…] (URL cannot hold several hosts). */
function parseEtcdUrl(value: string, cwd: string): EtcdStoreConfig | { readonly problem: string } {
  const [rest = '', query = ''] = value.slice('etcd://'.length).split('?');
  const at = rest.lastIndexOf('@');
  const userinfo = at >= 0 ? rest.slice(0, at) : undefined;
  const hosts = (at >= 0 ? rest.slice(at + 1) : rest).replace(/\/$/, '');
  const endpoints = hosts.split(',').filter((h) => h !== '');
  if (
    endpoints.length === 0 ||
    endpoints.some((h) => !/^[^:/\s]+:\d{1,5}$/.test(h) && !/^\[[^\]]+\]:\d{1,5}$/.test(h))
  )
    return {
      problem: 'etcd:// needs host:port[,host:port…], e.g. etcd://etcd-0:2379,etcd-1:2379,etcd-2:2379',
    };
  const params = new URLSearchParams(query);
  for (const name of params.keys())
    if (!['prefix', 'ca', 'cert', 'key'].includes(name))
      return { problem: `etcd:// does not take ?${name}=` };
  if ((params.get('cert') === null) !== (params.get('key') === null))
    return { problem: 'etcd:// needs cert and key together' };
  const prefix = params.get('prefix') ?? DEFAULT_ETCD_PREFIX;
  if (prefix === '') return { problem: 'etcd:// prefix must not be empty' };
  const file = (name: string): { [k: string]: string } => {
    const v = params.get(name);
    return v ? { [name]: path.resolve(cwd, v) } : {};
  };
  let auth: { user?: string; password?: string } = {};
  if (userinfo !== undefined) {
    const colon = userinfo.indexOf(':');
    if (colon < 1) return { problem: 'etcd:// credentials must be user:password@' };
    auth = {
      user: decodeURIComponent(userinfo.slice(0, colon)),
      password: decodeURIComponent(userinfo.slice(colon + 1)),
    };
  }
  return { kind: 'etcd', endpoints, prefix, ...auth, ...file('ca'), ...file('cert'), ...file('key') };
}

/** The store for logs: never the password. */
export function describeStore(store: StoreConfig): string {
  if (store.kind === 'memory') return 'memory';
  if (store.kind === 'sqlite') return `sqlite:${store.file}`;
  if (store.kind === 'etcd') {
    const user = store.user === undefined ? '' : `${encodeURIComponent(store.user)}:***@`;
    const tls = store.ca || store.cert ? ' (TLS)' : '';
    return `etcd://${user}${store.endpoints.join(',')}?prefix=${store.prefix}${tls}`;
  }
  const u = new URL(store.url);
  u.password = u.password ? '***' : '';
  return u.toString();
}
