import { Writable } from 'node:stream';
import fs from 'node:fs';
import path from 'node:path';
import { DEFAULTS, ENV_VARS, loadConfig } from '../../src/config/config';
import { createLogger } from '../../src/logger';

/** What never reaches a log line, and how settings are validated. */
function capture(redactBodyFields: string[] = []) {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  return { logger: createLogger({ level: 'debug', redactBodyFields }, stream), lines };
}

describe('logger', () => {
  it('redacts credentials and configured body fields', () => {
    const { logger, lines } = capture(['card.number', 'guest.*']);
    logger.debug(
      {
        request: {
          headers: {
            authorization: 'Bearer s3cret',
            cookie: 'sid=1',
            'proxy-authorization': 'Basic cHJveHk=',
            'x-api-key': 'key-1',
            'x-auth-token': 'tok-1',
            'x-ok': 'kept',
          },
          query: { access_token: 'qtok-1', ref: 'r-1' },
          body: { card: { number: '4111111111111111', holder: 'Ada' }, guest: { passport: 'P1' } },
        },
      },
      'saga request',
    );
    logger.info({ headers: { 'X-Api-Key': 'key-2', accept: '*/*' } }, 'headers');
    logger.info({ req: { headers: { 'proxy-authorization': 'Basic cHJveHky' } } }, 'req');
    const line = lines.join('');
    for (const secret of [
      's3cret',
      'sid=1',
      'cHJveHk',
      'key-1',
      'key-2',
      'tok-1',
      'qtok-1',
      '4111111111111111',
      'P1',
    ]) {
      expect([secret, line.includes(secret)]).toEqual([secret, false]);
    }
    expect(line).toContain('"holder":"Ada"');
    expect(line).toContain('"x-ok":"kept"');
    expect(line).toContain('"ref":"r-1"');
    expect(line).toContain('"accept":"*/*"');
  });
});

describe('loadConfig', () => {
  it('has every setting in docs/configuration.md, the store with its real default', () => {
    const doc = fs.readFileSync(path.join(__dirname, '..', '..', 'docs', 'configuration.md'), 'utf8');
    const rows = new Map(
      doc
        .split('\n')
        .map((l) => /^\| `(SAGAMESH_\w+)`\s*\|\s*([^|]*?)\s*\|/.exec(l))
        .filter((m): m is RegExpExecArray => m !== null)
        .map((m) => [m[1], m[2]]),
    );
    expect([...rows.keys()].sort()).toEqual(Object.values(ENV_VARS).sort());
    expect(DEFAULTS.store).toMatchObject({ kind: 'sqlite', file: './data/sagamesh.db' });
    expect(rows.get('SAGAMESH_STORE')).toBe('`sqlite:./data/sagamesh.db`');
  });

  it('has working defaults', () => {
    const config = loadConfig({}, {}, '/srv');
    expect(config).toMatchObject({
      grpcAddress: '127.0.0.1:50051',
      egressUrl: 'http://127.0.0.1:10001',
      store: { kind: 'sqlite', file: '/srv/data/sagamesh.db', synchronous: 'full' },
      logRedact: [],
    });
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('SAGAMESH_ADMIN_PROTECT_CONTENTS is true or false, and true needs the admin token', () => {
    expect(loadConfig({}).adminProtectContents).toBe(false);
    const token = { SAGAMESH_ADMIN_TOKEN: 'a-token-of-sixteen-chars' };
    expect(loadConfig({ ...token, SAGAMESH_ADMIN_PROTECT_CONTENTS: 'true' }).adminProtectContents).toBe(true);
    const problems = (env: NodeJS.ProcessEnv): unknown => {
      try {
        loadConfig(env);
      } catch (err) {
        return (err as { details: unknown }).details;
      }
      return [];
    };
    expect(problems({ ...token, SAGAMESH_ADMIN_PROTECT_CONTENTS: 'yes' })).toEqual([
      'SAGAMESH_ADMIN_PROTECT_CONTENTS=yes: must be true or false',
    ]);
    expect(problems({ SAGAMESH_ADMIN_PROTECT_CONTENTS: 'true' })).toEqual([
      'SAGAMESH_ADMIN_PROTECT_CONTENTS=true needs SAGAMESH_ADMIN_TOKEN',
    ]);
  });

  it('reports every problem at once and never echoes a store password', () => {
    let error: unknown;
    try {
      loadConfig({
        SAGAMESH_STORE: 'mysql://root:hunter2@db/x',
        SAGAMESH_LOG_REDACT: 'card.number, bad path',
        SAGAMESH_LEASE_TTL_MS: '5',
        SAGAMESH_GRPC_ADDR: 'nowhere',
      });
    } catch (err) {
      error = err;
    }
    expect(error).toMatchObject({ code: 'SAGAMESH_ERR_CONFIG_INVALID' });
    const details = (error as { details: string[] }).details;
    expect(details).toHaveLength(4);
    expect(details.join('\n')).not.toContain('hunter2');
  });

  it('sizes the egress connection pool, and refuses a bad size', () => {
    expect(loadConfig({}).egressConnections).toBe(1024);
    expect(loadConfig({ SAGAMESH_EGRESS_CONNECTIONS: '4096' }).egressConnections).toBe(4096);
    for (const bad of ['0', '-1', '1.5', 'many', '70000']) {
      let error: unknown;
      try {
        loadConfig({ SAGAMESH_EGRESS_CONNECTIONS: bad });
      } catch (err) {
        error = err;
      }
      expect(error).toMatchObject({
        code: 'SAGAMESH_ERR_CONFIG_INVALID',
        details: [`SAGAMESH_EGRESS_CONNECTIONS=${bad}: must be an integer from 1 to 65536`],
      });
    }
  });

  it('speaks HTTP/1.1 or h2c to the egress, and refuses any other protocol with a coded error', () => {
    expect(loadConfig({}).egressProtocol).toBe('http1');
    expect(loadConfig({ SAGAMESH_EGRESS_PROTOCOL: 'h2c' }).egressProtocol).toBe('h2c');
    let error: unknown;
    try {
      loadConfig({ SAGAMESH_EGRESS_PROTOCOL: 'h2' });
    } catch (err) {
      error = err;
    }
    expect(error).toMatchObject({
      code: 'SAGAMESH_ERR_CONFIG_INVALID',
      details: ['SAGAMESH_EGRESS_PROTOCOL=h2: must be one of http1, h2c'],
    });
  });

  it('bounds the sagas in flight (load shedding), 20000 by default', () => {
    expect(loadConfig({}).maxInFlight).toBe(20_000);
    expect(loadConfig({ SAGAMESH_MAX_IN_FLIGHT: '500' }).maxInFlight).toBe(500);
    expect(() => loadConfig({ SAGAMESH_MAX_IN_FLIGHT: '0' })).toThrow(
      /SAGAMESH_MAX_IN_FLIGHT=0: must be an integer/,
    );
  });

  it.each([
    'SAGAMESH_LEASE_TTL_MS',
    'SAGAMESH_MAX_DEADLINE_MS',
    'SAGAMESH_ANSWER_BUDGET_MS',
    'SAGAMESH_SHUTDOWN_GRACE_MS',
    'SAGAMESH_RELOAD_DEBOUNCE_MS',
  ])('refuses a %s that a Node timer could not hold (it would fire after 1 ms)', (name) => {
    const tooLong = String(2 ** 31);
    expect(() => loadConfig({ [name]: tooLong })).toThrow(`${name}=${tooLong}: must be an integer`);
  });

  it('parses postgres and sqlite store URLs', () => {
    expect(loadConfig({ SAGAMESH_STORE: 'postgres://u:p@127.0.0.1:5432/sagas' }).store).toEqual({
      kind: 'postgres',
      url: 'postgres://u:p@127.0.0.1:5432/sagas',
    });
    expect(loadConfig({ SAGAMESH_STORE: 'sqlite:/tmp/x.db?synchronous=normal' }).store).toEqual({
      kind: 'sqlite',
      file: '/tmp/x.db',
      synchronous: 'normal',
    });
  });
});
