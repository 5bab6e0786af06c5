import { authorize, contentsAccess } from '../../src/admin/auth';
import { servedHistory } from '../../src/admin/saga-contents';
import { parseListQuery } from '../../src/admin/list-query';
import { Readiness } from '../../src/admin/readiness';
import { html } from '../../src/admin/ui/html';
import { loadConfig } from '../../src/config/config';
import { Secret } from '../../src/config/secret';
import { inspect } from 'node:util';
import { parseFieldPaths } from '../../src/redaction';
import type { SagaRecord } from '../../src/runtime/journal';

/** The admin server's small pieces: bearer auth, query checks, readiness, HTML escaping, secrets. */

const codeOf = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
};

describe('authorize', () => {
  const token = new Secret('a-token-of-sixteen-chars');
  it('accepts exactly the configured bearer token', () => {
    expect(
      codeOf(() => authorize({ authorization: 'Bearer a-token-of-sixteen-chars' }, token)),
    ).toBeUndefined();
    expect(
      codeOf(() => authorize({ authorization: 'bearer a-token-of-sixteen-chars' }, token)),
    ).toBeUndefined();
  });
  it('refuses a missing, malformed or wrong token, and everything when none is configured', () => {
    for (const authorization of [
      undefined,
      '',
      'a-token-of-sixteen-chars',
      'Bearer',
      'Bearer a-token-of-sixteen-char',
      'Basic x',
    ]) {
      expect(codeOf(() => authorize({ authorization }, token))).toBe('SAGAMESH_ERR_ADMIN_UNAUTHORIZED');
    }
    expect(codeOf(() => authorize({ authorization: 'Bearer a-token-of-sixteen-chars' }, undefined))).toBe(
      'SAGAMESH_ERR_ADMIN_TOKEN_NOT_CONFIGURED',
    );
  });
});

describe('contentsAccess', () => {
  const token = new Secret('a-token-of-sixteen-chars');
  const basic = (userAndPassword: string) => `Basic ${Buffer.from(userAndPassword).toString('base64')}`;
  const access = (authorization: string | undefined, protect = true) => {
    try {
      return contentsAccess({ authorization }, token, protect);
    } catch (err) {
      return (err as { code?: string }).code;
    }
  };

  it('shows contents to everyone while they are not protected', () => {
    expect(access(undefined, false)).toBe('shown');
    expect(access('Bearer wrong', false)).toBe('shown');
  });

  it('protected: the token as Bearer or as the Basic password shows them; none withholds; a wrong one is 401', () => {
    expect(access('Bearer a-token-of-sixteen-chars')).toBe('shown');
    expect(access(basic('anyone:a-token-of-sixteen-chars'))).toBe('shown');
    expect(access(basic(':a-token-of-sixteen-chars'))).toBe('shown');
    expect(access(undefined)).toBe('withheld');
    for (const wrong of [
      'Bearer a-token-of-sixteen-char',
      basic('a-token-of-sixteen-chars'),
      basic('x:y'),
      'Digest x',
    ]) {
      expect([wrong, access(wrong)]).toEqual([wrong, 'SAGAMESH_ERR_ADMIN_UNAUTHORIZED']);
    }
  });
});

describe('servedHistory', () => {
  // A record as the saga log stored it before it kept only what templates read: credentials too.
  const started: SagaRecord = {
    sagaId: 's',
    seq: 1,
    at: 1,
    type: 'saga.started',
    definition: 'd',
    version: 'v',
    request: {
      method: 'POST',
      path: '/trips',
      query: { access_token: 'q-secret', ref: 'r' },
      headers: { 'proxy-authorization': 'Basic c2VjcmV0', 'x-api-key': 'k-secret', 'x-tenant': 't' },
      body: { card: { number: '4111' }, guest: 'Ada' },
    },
  };
  const completed: SagaRecord = {
    sagaId: 's',
    seq: 2,
    at: 2,
    type: 'call.completed',
    step: 'hotel',
    kind: 'action',
    attempt: 1,
    replay: false,
    outcome: 'success',
    status: 201,
    response: {
      status: 201,
      headers: { 'set-cookie': 'sid=1', 'content-type': 'json' },
      body: { id: 'h-1' },
    },
  };
  const redact = parseFieldPaths(['card.number']);

  it('redacts credentials and SAGAMESH_LOG_REDACT fields, in old records too', () => {
    expect(servedHistory([started, completed], 'shown', redact)).toEqual([
      {
        ...started,
        request: {
          method: 'POST',
          path: '/trips',
          query: { access_token: '[redacted]', ref: 'r' },
          headers: { 'proxy-authorization': '[redacted]', 'x-api-key': '[redacted]', 'x-tenant': 't' },
          body: { card: { number: '[redacted]' }, guest: 'Ada' },
        },
      },
      {
        ...completed,
        response: {
          status: 201,
          headers: { 'set-cookie': '[redacted]', 'content-type': 'json' },
          body: { id: 'h-1' },
        },
      },
    ]);
  });

  it('withheld: the request`s method and path, no responses; the rest of the timeline stays', () => {
    const served = servedHistory([started, completed], 'withheld', redact);
    expect(JSON.parse(JSON.stringify(served))).toEqual([
      { ...started, request: { method: 'POST', path: '/trips' } },
      {
        sagaId: 's',
        seq: 2,
        at: 2,
        type: 'call.completed',
        step: 'hotel',
        kind: 'action',
        attempt: 1,
        replay: false,
        outcome: 'success',
        status: 201,
      },
    ]);
  });
});

describe('Secret', () => {
  it('never shows its value when logged, serialised or printed', () => {
    const s = new Secret('very-secret-value-123');
    expect(JSON.stringify({ s })).toBe('{"s":"[redacted]"}');
    expect(`${String(s)} ${inspect({ s })}`).not.toContain('very-secret');
    expect(s.reveal()).toBe('very-secret-value-123');
  });
});

describe('parseListQuery', () => {
  it('reads filters, with defaults', () => {
    expect(parseListQuery(new URLSearchParams(''))).toEqual({ limit: 50 });
    expect(
      parseListQuery(new URLSearchParams('status=stuck&definition=trip&since=2026-01-01T00:00:00Z&limit=5')),
    ).toEqual({
      status: 'stuck',
      definition: 'trip',
      since: Date.parse('2026-01-01T00:00:00Z'),
      limit: 5,
    });
  });
  it('reports every bad filter together', () => {
    try {
      parseListQuery(new URLSearchParams('status=lost&since=yesterday&limit=5000'));
      throw new Error('no error');
    } catch (err) {
      expect(err).toMatchObject({ code: 'SAGAMESH_ERR_ADMIN_BAD_REQUEST' });
      expect((err as { details: string[] }).details).toHaveLength(3);
    }
  });
});

describe('Readiness', () => {
  it('is not ready while loading, while draining, or while the store does not answer', async () => {
    let storeUp = true;
    let draining = false;
    const r = new Readiness({
      ping: () => (storeUp ? Promise.resolve() : new Promise(() => undefined)),
      pingTimeoutMs: 20,
      isDraining: () => draining,
    });
    expect(await r.check()).toMatchObject({ ready: false, reasons: ['saga definitions are loading'] });
    r.markLoaded();
    expect(await r.check()).toEqual({
      ready: true,
      checks: { definitions: 'loaded', draining: false, store: 'ok' },
      reasons: [],
    });
    storeUp = false;
    expect(await r.check()).toMatchObject({ ready: false, checks: { store: 'unreachable' } });
    storeUp = true;
    draining = true;
    expect(await r.check()).toMatchObject({ ready: false, reasons: ['draining for shutdown'] });
    const own = new Readiness();
    own.markLoaded();
    own.setDraining();
    expect((await own.check()).ready).toBe(false);
  });
});

describe('html', () => {
  it('escapes interpolated data and keeps nested markup', () => {
    const name = '<script>alert("x")</script>';
    expect(html`<p title="${name}">${name}${[html`<b>${'&'}</b>`]}</p>`.value).toBe(
      '<p title="&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;">&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;<b>&amp;</b></p>',
    );
  });
});

describe('admin settings', () => {
  it('default to loopback without a token, and report bad values together without echoing the token', () => {
    const config = loadConfig({}, {}, '/');
    expect(config.adminAddress).toBe('127.0.0.1:9090');
    expect(config.adminToken).toBeUndefined();
    expect(loadConfig({ SAGAMESH_ADMIN_ADDR: '127.0.0.1:0' }).adminAddress).toBe('127.0.0.1:0');
    try {
      loadConfig({
        SAGAMESH_ADMIN_ADDR: 'localhost',
        SAGAMESH_ADMIN_TOKEN: 'short-secret',
        SAGAMESH_RELOAD_DEBOUNCE_MS: '-1',
      });
      throw new Error('no error');
    } catch (err) {
      expect(err).toMatchObject({ code: 'SAGAMESH_ERR_CONFIG_INVALID' });
      const details = (err as { details: string[] }).details.join('\n');
      expect(details).toContain('SAGAMESH_ADMIN_ADDR=localhost');
      expect(details).toContain('SAGAMESH_ADMIN_TOKEN: must be at least 16 characters');
      expect(details).toContain('SAGAMESH_RELOAD_DEBOUNCE_MS=-1');
      expect(details).not.toContain('short-secret');
    }
    expect(loadConfig({ SAGAMESH_ADMIN_TOKEN: 'long-enough-secret-1' }).adminToken?.reveal()).toBe(
      'long-enough-secret-1',
    );
  });
});
