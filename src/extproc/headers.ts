import type { HeaderMutation, HeaderValue, HttpHeaders } from './messages';

/**
 * Header helpers. Envoy may send a header's value in `value` or `raw_value`; sagamesh always
 * writes `raw_value` only (setting both makes Envoy reject the mutation with a 500).
 */
export function headerValue(h: HeaderValue): string {
  if (h.raw_value && h.raw_value.length > 0) return h.raw_value.toString('utf8');
  return h.value ?? '';
}

/** Lower-cased header map; repeated headers are joined with ", " (pseudo-headers kept). */
export function headersToRecord(headers: HttpHeaders | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const h of headers?.headers?.headers ?? []) {
    const key = h.key.toLowerCase();
    const value = headerValue(h);
    out[key] = key in out ? `${out[key]}, ${value}` : value;
  }
  return out;
}

/** Set (overwrite) these headers. */
export function setHeaders(headers: Readonly<Record<string, string>>): HeaderMutation {
  return {
    set_headers: Object.entries(headers).map(([key, value]) => ({
      header: { key, raw_value: Buffer.from(value, 'utf8') },
      append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' as const,
    })),
  };
}

/** Every header named `x-sagamesh-…` is sagamesh's: it sets them on step calls and pivot requests. */
export const OWNED_HEADER_PREFIX = 'x-sagamesh-';

/**
 * The headers of `headers` that sagamesh owns — `x-sagamesh-*` and the names in `owned` (every
 * pivot definition's `upstream.headers`) — for a `remove_headers`: a client never gets them to an
 * upstream. Usually none; then no mutation is sent at all.
 */
export function ownedHeaderNames(headers: HttpHeaders, owned: ReadonlySet<string>): string[] {
  const found: string[] = [];
  for (const h of headers.headers?.headers ?? []) {
    const key = h.key.toLowerCase();
    if ((key.startsWith(OWNED_HEADER_PREFIX) || owned.has(key)) && !found.includes(key)) found.push(key);
  }
  return found;
}

/** Splits `:path` into path and parsed query. */
export function splitPath(rawPath: string): { path: string; query: Record<string, string> } {
  const q = rawPath.indexOf('?');
  if (q < 0) return { path: rawPath, query: {} };
  return { path: rawPath.slice(0, q), query: Object.fromEntries(new URLSearchParams(rawPath.slice(q + 1))) };
}
