import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { systemClock } from '../../src/clock';
import { parseStoreUrl } from '../../src/config/store-url';
import { EtcdSagaLog } from '../../src/saga-log/etcd';
import type { SagaEvent } from '../../src/runtime/journal';
import type { TestEtcd } from '../helpers/etcd';
import { startEtcd } from '../helpers/etcd';
import { until } from '../helpers/etcd-replicas';

/**
 * The etcd log's TLS and auth options against real members: a cluster that demands client
 * certificates (SAGAMESH_STORE=etcd://…?ca=&cert=&key=), and one with auth enabled
 * (etcd://root:password@…), whose simple tokens expire after 2 s and are renewed on the next call.
 */
jest.setTimeout(90_000);

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sagamesh-etcd-tls-'));
const file = (name: string): string => path.join(dir, name);
let tls: TestEtcd | undefined;
let auth: TestEtcd | undefined;

/** A CA, a server certificate for 127.0.0.1 and a client certificate, by openssl. */
function makeCertificates(): void {
  const run = (...args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  run(
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-days',
    '1',
    '-subj',
    '/CN=sagamesh-test-ca',
  );
  fs.writeFileSync(file('server.ext'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  fs.writeFileSync(file('client.ext'), 'extendedKeyUsage=clientAuth\n');
  for (const [name, subject] of [
    ['server', '/CN=127.0.0.1'],
    ['client', '/CN=sagamesh'],
  ] as const) {
    run(
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.csr`,
      '-subj',
      subject,
    );
    run(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      `${name}.pem`,
      '-days',
      '1',
      '-extfile',
      `${name}.ext`,
    );
  }
}

afterAll(async () => {
  await tls?.stop();
  await auth?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

function open(url: string): Promise<EtcdSagaLog> {
  const store = parseStoreUrl(url, dir);
  if (!('kind' in store) || store.kind !== 'etcd') throw new Error(`not an etcd store: ${url}`);
  return EtcdSagaLog.open({ store, instanceId: 'a', leaseTtlMs: 10_000 }, systemClock);
}

const started: SagaEvent = {
  type: 'saga.started',
  definition: 'book-trip',
  version: 'v1',
  request: { method: 'POST', path: '/trips', query: {}, headers: {}, body: {} },
};

it('speaks TLS with a client certificate, and cannot open the log without one', async () => {
  makeCertificates();
  tls = await startEtcd({
    extraArgs: [
      `--cert-file=${file('server.pem')}`,
      `--key-file=${file('server.key')}`,
      `--trusted-ca-file=${file('ca.pem')}`,
    ],
    tls: {
      ca: fs.readFileSync(file('ca.pem')),
      cert: fs.readFileSync(file('client.pem')),
      key: fs.readFileSync(file('client.key')),
    },
  });
  const log = await open(`etcd://${tls.endpoints}?ca=ca.pem&cert=client.pem&key=client.key`);
  try {
    await log.append('s1', started);
    expect((await log.history('s1')).map((r) => r.type)).toEqual(['saga.started']);
  } finally {
    await log.close();
  }
  await expect(open(`etcd://${tls.endpoints}?ca=ca.pem`)).rejects.toMatchObject({
    code: 'SAGAMESH_ERR_STORE_UNAVAILABLE',
  });
  await expect(open(`etcd://${tls.endpoints}`)).rejects.toMatchObject({
    code: 'SAGAMESH_ERR_STORE_UNAVAILABLE',
  });
});

it('authenticates, renews an expired token on the call that finds it, and refuses a wrong password', async () => {
  auth = await startEtcd({
    extraArgs: ['--auth-token-ttl=2'],
    firstMemberArgs: ['--bootstrap-root-password=s3cret-pw'],
    // etcd answers Status to the root role only once auth is on.
    auth: { user: 'root', password: 's3cret-pw' },
  });
  const endpoints = auth.endpoints;
  // The first member enables auth once the cluster is up: until then a client without credentials gets in.
  await until(
    'auth enabled',
    () =>
      open(`etcd://${endpoints}`).then(
        (l) => l.close().then(() => 'open'),
        () => 'refused',
      ),
    (v) => v === 'refused',
  );
  await expect(open(`etcd://root:wrong@${endpoints}`)).rejects.toMatchObject({
    code: 'SAGAMESH_ERR_STORE_UNAVAILABLE',
  });
  const log = await open(`etcd://root:s3cret-pw@${endpoints}`);
  try {
    await log.append('s1', started);
    // Idle past the token's 2 s: etcd drops it, the next call is refused once and authenticates again.
    await new Promise((r) => setTimeout(r, 3500));
    await log.append('s2', started);
    expect((await log.list()).map((s) => s.sagaId).sort()).toEqual(['s1', 's2']);
  } finally {
    await log.close();
  }
});
