import { authorize } from '../../src/admin/auth';
import { parseListQuery } from '../../src/admin/list-query';
import { Readiness } from '../../src/admin/readiness';
import { html } from '../../src/admin/ui/html';
import { loadConfig } from '../../src/config/config';
import { Secret } from '../../src/config/secret';
import { inspect } from 'node:util';

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
