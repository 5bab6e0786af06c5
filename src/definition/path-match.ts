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
const UNRESERVED = /[A-Za-z0-9\-._~]/;
const ESCAPE_RUN = /(?:%[0-9A-Fa-f]{2})+/g;
/**
 * Needs the lenient reading: anything not plain (escapes, `;`, `\`, whitespace, non-ASCII), or a
 * segment ending in a dot (`.`, `..`, `x.`). `/static/app.v2.js` needs none: one map lookup.
 */
const MAY_BE_AMBIGUOUS = /[^A-Za-z0-9\-._~!$&'()*+,=:@/]|\.(?:\/|$)/;
const NON_ASCII = /[\u0080-\uffff]/;
/**
 * Longest path (query excluded) sagamesh reads; a longer one is refused (PATH_TOO_LONG) before
 * either reading. The readings take linear time, but 60 KiB of `%2520` (what Envoy's default
 * header limit lets through) took 9.6 ms of CPU against 20 µs before paths were read: a cheap way
 * to stall every other request. 4096 is IIS's default `maxUrl`; Apache and nginx allow 8 KiB.
 */
export const MAX_PATH_LENGTH = 4096;
/** `%252F` → `%2F` → `/`: enough rounds for any server that decodes more than once. */
const DECODE_ROUNDS = 4;

/**
 * The canonical reading, or undefined when the path has none: it does not start with `/`, or it
 * is not plain once its unreserved escapes are decoded (any other escape makes it not plain).
 */
export function canonicalPath(path: string): string | undefined {
  const decoded = path.includes('%') ? decodeUnreserved(path) : path;
  if (decoded === undefined || !decoded.startsWith('/') || !PLAIN.test(decoded)) return undefined;
  const lower = decoded.toLowerCase();
  // Most paths are canonical already: no copy of their segments.
  if (!lower.includes('//') && (lower.length === 1 || !lower.endsWith('/'))) return lower;
  const segments = lower.split('/').filter((s) => s !== '');
  return `/${segments.join('/')}`;
}

/** `%65` → `e`; undefined at the first escape that is not an unreserved character (or no escape). */
function decodeUnreserved(path: string): string | undefined {
  let out = '';
  let from = 0;
  for (let i = path.indexOf('%'); i >= 0; i = path.indexOf('%', from)) {
    const c = String.fromCharCode(hexByte(path, i + 1));
    if (!UNRESERVED.test(c)) return undefined;
    out += path.slice(from, i) + c;
    from = i + 3;
  }
  return out + path.slice(from);
}

/** The byte the two hex digits at `at` spell, or -1. */
function hexByte(s: string, at: number): number {
  const hi = hexDigit(s.charCodeAt(at));
  const lo = hexDigit(s.charCodeAt(at + 1));
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

function hexDigit(code: number): number {
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  const lower = code | 0x20;
  return lower >= 0x61 && lower <= 0x66 ? lower - 0x61 + 10 : -1;
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
    if (raw === '') continue;
    const semicolon = raw.indexOf(';');
    const segment = trim(semicolon < 0 ? raw : raw.slice(0, semicolon), false);
    if (segment === '..') out.pop();
    else if (segment !== '.') {
      const trimmed = trim(segment, true);
      if (trimmed !== '') out.push(trimmed);
    }
  }
  return `/${out.join('/')}`;
}

/**
 * `s` without whitespace (Unicode's, as `\s` has it) and control characters at either end, and
 * with `dots`, without trailing dots. A loop, not a regular expression: `[\s.]+$` backtracks over
 * every run it cannot end with, quadratic in a path of 20,000 spaces and an `x` (1.5 s measured).
 */
function trim(s: string, dots: boolean): string {
  let start = 0;
  let end = s.length;
  while (start < end && isSpace(s.charCodeAt(start))) start++;
  while (end > start && (isSpace(s.charCodeAt(end - 1)) || (dots && s.charCodeAt(end - 1) === DOT))) end--;
  return start === 0 && end === s.length ? s : s.slice(start, end);
}

const DOT = 0x2e;

function isSpace(code: number): boolean {
  return (
    code <= 0x20 || (code >= 0x7f && code <= 0x9f) || (code > 0x9f && /\s/.test(String.fromCharCode(code)))
  );
}
