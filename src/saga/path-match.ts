/**
 * How a request path meets a definition's `match.path` (docs/saga-format.md, "Matching"). Two
 * readings of one path:
 *
 * - canonical: the spellings that name the saga route, so the saga runs. Percent-encoded
 *   unreserved characters are decoded (`%65` → `e`); what remains must be plain (unreserved
 *   characters, `!$&'()*+,=:@` and `/`); then ASCII case is ignored, repeated slashes merged and a
 *   trailing slash dropped: `/ITINERARIES/`, `//itineraries`, `/itinerari%65s` → `/itineraries`.
 *   Anything else has no canonical reading.
 * - lenient: what some server behind Envoy might make of it. Every escape decoded, repeatedly
 *   (`%252F` → `/`); `\` read as `/`; `;params` dropped from segments; whitespace and control
 *   characters trimmed from segments, and trailing dots; `.` and `..` resolved; Unicode
 *   compatibility forms and case folded (`ſ` → `s`). A path whose lenient reading names a saga
 *   route that its canonical reading does not is ambiguous: refused, never passed to the upstream.
 *
 * Definition paths are plain and canonical already (the schema's `match.path` pattern), so both
 * readings of a definition path are its lower-case self.
 */

/** What a plain path may hold: RFC 3986 unreserved characters, sub-delimiters but `;`, `:`, `@`, `/`. */
const PLAIN = /^[A-Za-z0-9\-._~!$&'()*+,=:@/]*$/;
const ESCAPE = /%([0-9A-Fa-f]{2})/g;
const UNRESERVED = /^[A-Za-z0-9\-._~]$/;
const ESCAPE_RUN = /(?:%[0-9A-Fa-f]{2})+/g;
/**
 * Needs the lenient reading: anything not plain (escapes, `;`, `\`, whitespace, non-ASCII), or a
 * segment ending in a dot (`.`, `..`, `x.`). `/static/app.v2.js` needs none: one map lookup.
 */
const MAY_BE_AMBIGUOUS = /[^A-Za-z0-9\-._~!$&'()*+,=:@/]|\.(?:\/|$)/;
const NON_ASCII = /[\u0080-\uffff]/;
/** Whitespace (Unicode's, as `\s` has it) and control characters at either end of a segment. */
// eslint-disable-next-line no-control-regex -- control characters are what it trims
const EDGE_SPACE = /^[\s\x00-\x1f\x7f-\x9f]+|[\s\x00-\x1f\x7f-\x9f]+$/g;
// eslint-disable-next-line no-control-regex -- as EDGE_SPACE, and dots
const TRAILING_DOTS = /[\s\x00-\x1f\x7f-\x9f.]+$/;
/** `%252F` → `%2F` → `/`: enough rounds for any server that decodes more than once. */
const DECODE_ROUNDS = 4;

/** The canonical reading, or undefined when the path has none (it is not plain once decoded). */
export function canonicalPath(path: string): string | undefined {
  const decoded = path.includes('%')
    ? path.replace(ESCAPE, (escape, hex: string) => {
        const c = String.fromCharCode(parseInt(hex, 16));
        return UNRESERVED.test(c) ? c : escape;
      })
    : path;
  if (!PLAIN.test(decoded)) return undefined;
  const lower = decoded.toLowerCase();
  // Most paths are canonical already: no copy of their segments.
  if (lower.startsWith('/') && !lower.includes('//') && (lower.length === 1 || !lower.endsWith('/'))) {
    return lower;
  }
  const segments = lower.split('/').filter((s) => s !== '');
  return `/${segments.join('/')}`;
}

/** Whether the path may have a lenient reading its canonical one lacks (the fast no for most paths). */
export function mayBeAmbiguous(path: string): boolean {
  return MAY_BE_AMBIGUOUS.test(path);
}

/** The lenient reading (see above); always a path starting with `/`. */
export function lenientPath(path: string): string {
  let p = path;
  for (let round = 0; round < DECODE_ROUNDS && p.includes('%'); round++) {
    const next = p.replace(ESCAPE_RUN, (run) => Buffer.from(run.replace(/%/g, ''), 'hex').toString('utf8'));
    if (next === p) break;
    p = next;
  }
  // Decoded `?` or `#` would end the path for a server that decodes before it splits.
  p = p.split(/[?#]/, 1)[0] ?? '';
  p = NON_ASCII.test(p) ? p.normalize('NFKC').toUpperCase().toLowerCase() : p.toLowerCase();
  const out: string[] = [];
  for (const raw of p.replace(/\\/g, '/').split('/')) {
    const segment = (raw.split(';', 1)[0] ?? '').replace(EDGE_SPACE, '');
    if (segment === '..') out.pop();
    else if (segment !== '.') {
      const trimmed = segment.replace(TRAILING_DOTS, '');
      if (trimmed !== '') out.push(trimmed);
    }
  }
  return `/${out.join('/')}`;
}
