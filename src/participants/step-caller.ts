import { Pool } from 'undici';
import type { Dispatcher } from 'undici';
import { DEFAULT_BODY_LIMITS, jsonShapeProblem } from '../json-limits';
import type { CallResponse, HttpCaller } from '../engine/http-caller';
import { CallNetworkError, responseTooLarge } from '../engine/http-caller';

/**
 * The HTTP step caller: sends one step or compensation request to a participant through Envoy's
 * egress listener (locally) or the pod's sidecar (in Istio). The definition's origin becomes the
 * Host header, which is what the egress listener routes on; the connection itself always goes to
 * the egress address, so data can never steer a call elsewhere.
 *
 * It makes exactly one attempt: timeouts and retries belong to the saga machine, which aborts the
 * signal when a step times out.
 */
/**
 * Stops reading a body. Destroying undici's body emits an abort error; with nobody listening that
 * would be an uncaught exception, i.e. the coordinator's crash on an oversized answer.
 */
function discard(body: Dispatcher.ResponseData['body']): void {
  body.on('error', () => undefined);
  body.destroy();
}

/**
 * The body of an answer without a Content-Length (chunked), read up to `maxBytes`. One with a
 * Content-Length was checked against it before and is read whole (`text()`): the common case
 * keeps undici's own reader.
 */
async function boundedText(body: Dispatcher.ResponseData['body'], maxBytes: number): Promise<string> {
  const chunks: Buffer[] = [];
  let received = 0;
  for await (const chunk of body) {
    const buf = chunk as Buffer;
    received += buf.length;
    if (received > maxBytes) {
      discard(body);
      throw responseTooLarge(received, maxBytes);
    }
    chunks.push(buf);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export interface HttpCallerOptions {
  /** Where step calls are sent, e.g. http://127.0.0.1:10001. */
  readonly egressUrl: string;
  /** Connections to the egress (SAGAMESH_EGRESS_CONNECTIONS); calls beyond them wait in undici's queue. */
  readonly connections?: number;
  /** Largest participant response body read, in bytes. */
  readonly maxResponseBytes?: number;
  /** Deepest JSON body read (SAGAMESH_MAX_BODY_DEPTH); a deeper one is unreadable. */
  readonly maxBodyDepth?: number;
}

function headerRecord(headers: Dispatcher.ResponseData['headers']): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers))
    if (v !== undefined) out[k] = Array.isArray(v) ? v.join(', ') : v;
  return out;
}

/**
 * A response body: parsed JSON when the participant declares JSON, else the text. A declared JSON
 * body that does not parse, or nests deeper than `maxDepth` (measured before it is parsed: a deep
 * one would overflow the stack of whatever walks it next, the saga log's serialiser first), is
 * kept as text and marked unreadable.
 */
export function parseBody(
  text: string,
  contentType: string | undefined,
  maxDepth: number = DEFAULT_BODY_LIMITS.maxDepth,
): Pick<CallResponse, 'body' | 'unreadable'> {
  if (text.length === 0) return { body: null };
  if (!contentType?.includes('json')) return { body: text };
  const tooDeep = jsonShapeProblem(text, { maxDepth, maxValues: Infinity });
  if (tooDeep) return { body: text, unreadable: tooDeep };
  try {
    return { body: JSON.parse(text) as unknown };
  } catch (err) {
    return {
      body: text,
      unreadable: `the body is not JSON: ${err instanceof Error ? err.message : String(err)}`,
    };
  }
}

export function errnoOf(err: unknown): string | undefined {
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

export function createHttpCaller(options: HttpCallerOptions): HttpCaller {
  const maxBytes = options.maxResponseBytes ?? 1024 * 1024;
  const maxDepth = options.maxBodyDepth ?? DEFAULT_BODY_LIMITS.maxDepth;
  const pool = new Pool(options.egressUrl, {
    connections: options.connections ?? 1024,
    // Step timeouts live in the saga machine; these only stop a stuck socket from living forever.
    headersTimeout: 0,
    bodyTimeout: 0,
    keepAliveTimeout: 30_000,
  });

  return {
    async call(request) {
      const host = new URL(request.origin).host;
      const hasBody = request.body !== undefined;
      const payload = hasBody ? JSON.stringify(request.body) : undefined;
      let res: Dispatcher.ResponseData;
      try {
        res = await pool.request({
          method: request.method,
          path: request.path,
          headers: {
            ...request.headers,
            host,
            ...(hasBody ? { 'content-type': 'application/json' } : {}),
          },
          ...(payload !== undefined ? { body: payload } : {}),
          signal: request.signal,
        });
      } catch (err) {
        throw new CallNetworkError(err instanceof Error ? err.message : String(err), errnoOf(err), {
          cause: err,
        });
      }
      const length = res.headers['content-length'];
      if (Number(length ?? 0) > maxBytes) {
        discard(res.body);
        throw responseTooLarge(Number(length), maxBytes);
      }
      const text = length === undefined ? await boundedText(res.body, maxBytes) : await res.body.text();
      const headers = headerRecord(res.headers);
      return { status: res.statusCode, headers, ...parseBody(text, headers['content-type'], maxDepth) };
    },
    close: () => pool.close(),
  };
}
