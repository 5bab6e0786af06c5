/**
 * What never leaves sagamesh as it came in: credentials in request headers and query strings, and
 * the request-body fields an operator lists in SAGAMESH_LOG_REDACT. One rule for the saga log, the
 * admin API and UI, and the logger, so that they cannot drift apart.
 */

export const REDACTED = '[redacted]';

/** Whole names that are credentials whatever their words. */
const CREDENTIAL_NAMES = new Set(['authorization', 'proxy-authorization', 'cookie', 'set-cookie']);
/** A name holding one of these words (split at `-` and `_`) is a credential: x-api-key, x-auth-token, x-session-id. */
const CREDENTIAL_WORDS = new Set([
  'token',
  'secret',
  'password',
  'passwd',
  'apikey',
  'credential',
  'credentials',
  'session',
  'cookie',
  'authorization',
]);

/**
 * Whether a header or query parameter name (any case) names a credential: `authorization`,
 * `proxy-authorization`, `cookie`, or a name with one of the words above or `api` then `key`
 * (`x-api-key`, `api_key`, `access_token`, `x-csrf-token`, `x-amz-security-token`, `x-session-id`).
 */
export function isCredentialName(name: string): boolean {
  const lower = name.toLowerCase();
  if (CREDENTIAL_NAMES.has(lower)) return true;
  const words = lower.split(/[-_]/);
  return words.some((w, i) => CREDENTIAL_WORDS.has(w) || (w === 'api' && words[i + 1] === 'key'));
}

/** A copy with every credential-named entry's value replaced by `[redacted]`. */
export function redactCredentials<T>(values: Readonly<Record<string, T>>): Record<string, T | string> {
  // fromEntries, not assignment: a `__proto__` name stays a plain key.
  return Object.fromEntries(
    Object.entries(values).map(([k, v]) => [k, isCredentialName(k) ? REDACTED : v] as const),
  );
}

/** A field path of SAGAMESH_LOG_REDACT, split: `card.number` → ['card', 'number']; `*` is any field. */
export type FieldPath = readonly string[];

export function parseFieldPaths(paths: readonly string[]): FieldPath[] {
  return paths.map((p) => p.split('.'));
}

/**
 * A copy of `value` with every field at one of `paths` replaced by `[redacted]`; what no path
 * touches is shared, not copied. An array on the way is walked item by item (as a template's
 * `card.number` reads every item's), and `*` matches every field or item.
 */
export function redactFields(value: unknown, paths: readonly FieldPath[]): unknown {
  if (paths.length === 0 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((item) => redactFields(item, paths));
  const out: [string, unknown][] = [];
  let changed = false;
  for (const [key, v] of Object.entries(value)) {
    const here = paths.filter((p) => p[0] === '*' || p[0] === key);
    const redacted = here.some((p) => p.length === 1)
      ? REDACTED
      : redactFields(
          v,
          here.map((p) => p.slice(1)),
        );
    if (redacted !== v) changed = true;
    out.push([key, redacted]);
  }
  // fromEntries, not assignment: a `__proto__` key from the body stays a plain key.
  return changed ? Object.fromEntries(out) : value;
}
