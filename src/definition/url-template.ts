import type { TemplateScope, UrlTemplate } from './definition';
import { compileExpression, evaluate, renderError } from './expression';
import type { KnownExpressions } from './expression';
import type { Expression } from './expression';
import { splitInterpolation } from './interpolation';
import { formatPath } from './problems';
import type { Path } from './problems';
import { Compilation } from './template-compilation';
import type { Compiled } from './template-compilation';

const URL_HEAD = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)/;
const HOST =
  /^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*|\[[0-9a-f:.]+\])$/;
/** Characters a path or query may hold as written (RFC 3986 pchar plus `/` and `?`). */
const URL_TEXT = /^(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?]|%[0-9A-Fa-f]{2})*$/;

interface UrlPart {
  readonly text?: string;
  readonly expr?: Expression;
  readonly inPath: boolean;
}

/**
 * A step URL. Scheme and authority must be written out in full, before any expression: that is
 * what keeps request data from choosing where a step call goes (no SSRF). Expression values are
 * percent-encoded one by one, so `a/b` stays one path segment (`a%2Fb`).
 */
export function compileUrlTemplate(
  text: string,
  path: Path,
  known?: KnownExpressions,
): Compiled<UrlTemplate> {
  const c = new Compilation(known);
  const plan = planUrl(text, path, c);
  const where = formatPath(path);
  return c.result<UrlTemplate>(() => {
    if (!plan) return undefined;
    const { origin, parts } = plan;
    const fixed = parts.every((p) => p.expr === undefined)
      ? parts.map((p) => p.text ?? '').join('')
      : undefined;
    const done = Promise.resolve(fixed ?? '');
    return Object.freeze({
      origin,
      renderPath: fixed !== undefined ? () => done : (s: TemplateScope) => renderUrlPath(parts, s, where),
      stepRefs: c.stepRefs,
      readsBody: c.readsBody,
      requestReads: c.request.read(),
    });
  });
}

function planUrl(text: string, path: Path, c: Compilation): { origin: string; parts: UrlPart[] } | undefined {
  const bad = (message: string): undefined => {
    c.problems.push({ path, kind: 'url', message });
    return undefined;
  };
  const split = splitInterpolation(text);
  if ('error' in split) return bad(split.error);
  const [head, ...rest] = split.pieces;
  const m = typeof head === 'string' ? URL_HEAD.exec(head) : null;
  if (typeof head !== 'string' || !m) return bad('must start with http:// or https:// and a literal host');
  const scheme = (m[1] ?? '').toLowerCase();
  const authority = (m[2] ?? '').toLowerCase();
  const afterAuthority = head.slice(m[0].length);
  if (scheme !== 'http' && scheme !== 'https') return bad(`scheme must be http or https, not ${scheme}`);
  if (rest.length > 0 && afterAuthority === '') {
    return bad('the host must be literal: an expression may only follow the / or ? after the host');
  }
  if (authority.includes('@')) return bad('credentials are not allowed in a step URL');
  const [, host = '', port] = /^(.*?)(?::(\d{1,5}))?$/.exec(authority) ?? [];
  if (!HOST.test(host)) return bad(`"${host}" is not a host name`);
  if (port !== undefined && (Number(port) < 1 || Number(port) > 65535))
    return bad(`port ${port} is out of range`);

  const parts: UrlPart[] = [];
  let inPath = true;
  for (const p of [afterAuthority, ...rest]) {
    if (typeof p !== 'string') {
      const expr = compileExpression(p.source, path, c);
      if (expr) parts.push({ expr, inPath });
    } else if (p !== '') {
      if (p.includes('#')) return bad('a step URL cannot have a fragment (#)');
      if (!URL_TEXT.test(p)) return bad(`"${p}" has characters that must be percent-encoded`);
      parts.push({ text: p, inPath });
      if (p.includes('?')) inPath = false;
    }
  }
  if (parts[0] === undefined || parts[0].text?.startsWith('?')) parts.unshift({ text: '/', inPath: true });
  // Expressions stand in as `x`: a literal . or .. segment is wrong whatever the data.
  const skeleton = parts.map((p) => p.text ?? 'x').join('');
  if (hasDotSegment(skeleton)) return bad('the path must not hold . or .. segments');
  return { origin: `${scheme}://${authority}`, parts };
}

async function renderUrlPath(
  parts: readonly UrlPart[],
  scope: TemplateScope,
  where: string,
): Promise<string> {
  let out = '';
  let dynamicPath = false;
  for (const part of parts) {
    if (part.expr === undefined) {
      out += part.text ?? '';
      continue;
    }
    const v = await evaluate(part.expr, scope);
    if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') {
      const what =
        v === undefined
          ? 'nothing'
          : v === null
            ? 'null'
            : 'a JSON ' + (Array.isArray(v) ? 'array' : 'object');
      throw renderError(
        where,
        `\${${part.expr.source}} yielded ${what}; a URL needs a string, number or boolean`,
      );
    }
    const text = String(v);
    if (part.inPath && text === '')
      throw renderError(where, `\${${part.expr.source}} yielded an empty path segment`);
    if (part.inPath) dynamicPath = true;
    out += encodeComponent(text, where);
  }
  // `.` and `..` survive encodeURIComponent and would move the call to another resource.
  if (dynamicPath && hasDotSegment(out)) {
    throw renderError(where, `the rendered path ${out} holds a . or .. segment`);
  }
  return out;
}

function encodeComponent(text: string, where: string): string {
  try {
    return encodeURIComponent(text);
  } catch (err) {
    throw renderError(where, 'a URL value holds a lone UTF-16 surrogate', err); // URIError
  }
}

function hasDotSegment(pathAndQuery: string): boolean {
  const [pathOnly = ''] = pathAndQuery.split('?');
  return pathOnly.split('/').some((s) => /^(?:\.|%2e){1,2}$/i.test(s));
}
