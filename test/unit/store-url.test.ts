import path from 'node:path';
import { describeStore, parseStoreUrl } from '../../src/config/store-url';

/** SAGAMESH_STORE's etcd:// form: several members, credentials, a prefix and TLS files. */
describe('SAGAMESH_STORE=etcd://…', () => {
  const cwd = '/srv/sagamesh';

  it('takes every member, the default prefix, and nothing else', () => {
    expect(parseStoreUrl('etcd://etcd-0.etcd:2379,etcd-1.etcd:2379,10.0.0.3:2379', cwd)).toEqual({
      kind: 'etcd',
      endpoints: ['etcd-0.etcd:2379', 'etcd-1.etcd:2379', '10.0.0.3:2379'],
      prefix: '/sagamesh/',
    });
  });

  it('takes credentials (URI-encoded), a prefix, and TLS files relative to the working directory', () => {
    expect(
      parseStoreUrl(
        'etcd://saga%40mesh:p%3Ass@[::1]:2379?prefix=/team-a/&ca=certs/ca.pem&cert=c.pem&key=k.pem',
        cwd,
      ),
    ).toEqual({
      kind: 'etcd',
      endpoints: ['[::1]:2379'],
      prefix: '/team-a/',
      user: 'saga@mesh',
      password: 'p:ss',
      ca: path.resolve(cwd, 'certs/ca.pem'),
      cert: path.resolve(cwd, 'c.pem'),
      key: path.resolve(cwd, 'k.pem'),
    });
  });

  it.each([
    ['etcd://', 'host:port'],
    ['etcd://etcd-0', 'host:port'],
    ['etcd://etcd-0:2379/path', 'host:port'],
    ['etcd://etcd-0:2379?prefix=', 'prefix'],
    ['etcd://etcd-0:2379?cert=c.pem', 'cert and key'],
    ['etcd://etcd-0:2379?timeout=5', '?timeout='],
    ['etcd://nopassword@etcd-0:2379', 'user:password'],
  ])('refuses %s', (value, problem) => {
    const parsed = parseStoreUrl(value, cwd);
    expect(parsed).toHaveProperty('problem');
    expect((parsed as { problem: string }).problem).toContain(problem);
  });

  it('is described without its password', () => {
    const store = parseStoreUrl('etcd://root:s3cret@a:2379,b:2379?ca=ca.pem', cwd);
    if (!('kind' in store)) throw new Error(store.problem);
    expect(describeStore(store)).toBe('etcd://root:***@a:2379,b:2379?prefix=/sagamesh/ (TLS)');
    expect(describeStore(store)).not.toContain('s3cret');
  });
});
