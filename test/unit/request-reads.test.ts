import { sagaRequest } from '../../src/extproc/saga-request';
import { isCredentialName, REDACTED, parseFieldPaths, redactFields } from '../../src/redaction';
import { loadDefinitionText } from '../../src/definition/loader';
import type { RequestReads } from '../../src/definition/request-reads';
import { compileHeaderTemplate, compileTemplate, compileUrlTemplate } from '../../src/definition/template';
import { definition } from '../helpers/fake-definition';

/** What of the request a saga keeps: the reads its templates make (found at load), and no credential. */
const readsOf = (source: string): RequestReads | undefined =>
  compileTemplate(`\${${source}}`, ['t']).template?.requestReads;

describe('what an expression reads of the request', () => {
  it.each<[string, Partial<RequestReads>]>([
    ['request.method & request.path', { headers: [], query: [], body: [] }],
    ['request.headers.`x-tenant`', { headers: ['x-tenant'] }],
    ["request.headers.'x-tenant'[0]", { headers: ['x-tenant'] }],
    ['$.request.query.ref', { query: ['ref'] }],
    ['$$.request.query.ref & request.query.lang', { query: ['lang', 'ref'] }],
    ['request.headers', { headers: 'all' }],
    ['request.headers.*', { headers: 'all' }],
    ["$lookup(request.headers, 'x-a')", { headers: 'all' }],
    ["request.headers[$contains($, 'a')].x", { headers: 'all' }],
    ['$keys(request.query)', { query: 'all' }],
    ['request.body.guest.name', { body: [['guest', 'name']] }],
    ['request.body.items[price > 1].name', { body: [['items']] }],
    ['request.body.*.number', { body: [[]] }],
    ["$merge([request.body.hotel, {'guest': request.body.guest}])", { body: [['guest'], ['hotel']] }],
    ['request.body', { body: [[]] }],
    ['request', { headers: 'all', query: 'all', body: [[]] }],
    ['$', { headers: 'all', query: 'all', body: [[]] }],
    ['($r := request; $r.headers.a)', { headers: 'all', query: 'all', body: [[]] }],
    // Inside a filter `request` is the item's own field, not the saga's request.
    ['steps.hotel.response.body.rooms[request = 1]', { headers: [], query: [], body: [] }],
  ])('%s', (source, expected) => {
    expect(readsOf(source)).toMatchObject(expected);
  });

  it('merges what every template of a definition reads', () => {
    const text = `apiVersion: sagamesh.dev/v1alpha1
kind: Saga
metadata: { name: reads }
spec:
  match: { method: POST, path: /reads }
  steps:
    - name: one
      action:
        request:
          method: POST
          url: http://one/x/\${request.query.id}
          headers: { x-t: '\${request.headers.\`x-tenant\`}' }
          body: { g: '\${request.body.guest}' }
  response:
    success: { body: { n: '\${request.body.guest.name}', h: '\${request.headers.\`x-region\`}' } }
`;
    const { definition: def, problems } = loadDefinitionText('t.yaml', text);
    expect(problems).toEqual([]);
    expect(def?.requestReads).toEqual({
      headers: ['x-region', 'x-tenant'],
      query: ['id'],
      body: [['guest']],
    });
    expect(compileUrlTemplate('http://a/${request.query.q}', ['u']).template?.requestReads.query).toEqual([
      'q',
    ]);
    expect(compileHeaderTemplate('${request.headers.h}', ['h']).template?.requestReads.headers).toEqual([
      'h',
    ]);
  });
});

describe('credentials', () => {
  it.each([
    'authorization',
    'Proxy-Authorization',
    'cookie',
    'x-api-key',
    'api_key',
    'apikey',
    'access_token',
    'x-auth-token',
    'x-csrf-token',
    'x-amz-security-token',
    'x-session-id',
    'client_secret',
    'password',
  ])('%s is a credential', (name) => {
    expect(isCredentialName(name)).toBe(true);
  });

  it.each(['x-tenant', 'idempotency-key', 'x-request-id', 'traceparent', 'content-type', 'ref', 'author'])(
    '%s is not',
    (name) => {
      expect(isCredentialName(name)).toBe(false);
    },
  );

  it('a definition that reads one by name does not load (DEF_EXPRESSION)', () => {
    for (const read of [
      'request.headers.authorization',
      'request.headers.`x-api-key`',
      'request.query.access_token',
    ]) {
      const { problems } = loadDefinitionText(
        't.yaml',
        `apiVersion: sagamesh.dev/v1alpha1
kind: Saga
metadata: { name: creds }
spec:
  match: { method: POST, path: /creds }
  steps:
    - name: one
      action: { request: { method: POST, url: http://one/x, body: { a: '\${${read}}' } } }
`,
      );
      expect(problems.map((p) => [p.code, p.path])).toEqual([
        ['SAGAMESH_ERR_DEF_EXPRESSION', 'spec.steps[0].action.request.body.a'],
      ]);
      expect(problems[0]?.message).toContain('a credential');
    }
  });
});

describe('sagaRequest: the request a saga runs with and its saga.started record keeps', () => {
  const incoming = {
    method: 'POST',
    path: '/test',
    query: { ref: 'r', access_token: 'q-secret', other: 'o' },
    headers: {
      ':path': '/test',
      'x-tenant': 't',
      authorization: 'Bearer secret',
      'x-api-key': 'k-secret',
      'x-other': 'o',
    },
    body: { guest: { name: 'Ada', passport: 'P1' }, card: { number: '4111', holder: 'Ada' } },
  };
  const redact = parseFieldPaths(['card.number', 'guest.passport']);
  const reads = (requestReads: RequestReads) => definition([], { requestReads });

  it('keeps the literal reads only, and redacts the redacted fields no template reads', () => {
    const def = reads({ headers: ['x-tenant'], query: ['ref'], body: [['guest']] });
    expect(sagaRequest(def, incoming, redact)).toEqual({
      method: 'POST',
      path: '/test',
      query: { ref: 'r' },
      headers: { 'x-tenant': 't' },
      body: { guest: { name: 'Ada', passport: 'P1' }, card: { number: REDACTED, holder: 'Ada' } },
    });
  });

  it('keeps every header and parameter but credentials and pseudo-headers on a dynamic read; no body unread', () => {
    const def = reads({ headers: 'all', query: 'all', body: [] });
    expect(sagaRequest(def, incoming, redact)).toEqual({
      method: 'POST',
      path: '/test',
      query: { ref: 'r', other: 'o' },
      headers: { 'x-tenant': 't', 'x-other': 'o' },
      body: null,
    });
  });

  it('keeps a whole body read whole: recovery must render what the live run rendered', () => {
    const def = reads({ headers: [], query: [], body: [[]] });
    expect(sagaRequest(def, incoming, redact).body).toBe(incoming.body);
  });
});

describe('redactFields', () => {
  it('replaces the fields at the paths, walks arrays, shares what it does not touch', () => {
    const body = { a: { b: 1, c: 2 }, items: [{ n: 1, k: 'x' }, { n: 2 }], keep: { deep: [1] }, s: 'x' };
    const out = redactFields(body, parseFieldPaths(['a.b', 'items.k', '*.deep', 's.x'])) as typeof body;
    expect(out).toEqual({
      a: { b: REDACTED, c: 2 },
      items: [{ n: 1, k: REDACTED }, { n: 2 }],
      keep: { deep: REDACTED },
      s: 'x',
    });
    expect(body.a.b).toBe(1);
    expect(redactFields(body, parseFieldPaths(['nothing.here']))).toBe(body);
  });
});
