import { Pool, util } from 'undici';
import type { Dispatcher } from 'undici';
import { DEFAULT_BODY_LIMITS, jsonShapeProblem } from '../json-limits';
import type { CallCancellation, CallResponse, HttpCaller } from '../engine/http-caller';
import { callCancelled, CallNetworkError, responseTooLarge } from '../engine/http-caller';

/**
 * The HTTP step caller: sends one step or compensation request to a participant through Envoy's
 * egress listener (locally) or the pod's sidecar (in Istio). The definition's origin becomes the
 * Host header, which is what the egress listener routes on; the connection itself always goes to
 * the egress address, so data can never steer a call elsewhere.
 *
 * It makes exactly one attempt: timeouts and retries belong to the saga machine, which cancels the
 * call when a step times out.
 */
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

/**
 * One call's undici handler: the answer's bytes are gathered as they arrive, up to `maxBytes`,
 * and settle the call once complete. Through `dispatch` rather than `request()`, a call builds no
 * body stream, async resource or async iteration: per call, that was most of the caller's CPU.
 */
class CallHandler implements Dispatcher.DispatchHandler {
  private status = 0;
  private headers: Record<string, string> = {};
  private readonly chunks: Buffer[] = [];
  private received = 0;
  private abort: ((err?: Error) => void) | undefined;
  private settled = false;

  constructor(
    private readonly cancellation: CallCancellation,
    private readonly maxBytes: number,
    private readonly maxDepth: number,
    private readonly resolve: (r: CallResponse) => void,
    private readonly reject: (err: CallNetworkError) => void,
  ) {
    cancellation.onCancel(() => this.abort?.(callCancelled()));
  }

  onConnect(abort: (err?: Error) => void): void {
    this.abort = abort;
    if (this.cancellation.cancelled) abort(callCancelled());
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[]): boolean {
    if (statusCode < 200) return true;
    this.status = statusCode;
    this.headers = headerRecord(util.parseHeaders(rawHeaders));
    const length = Number(this.headers['content-length'] ?? 0);
    // A declared body over the limit is refused before a byte of it is read.
    if (length > this.maxBytes) this.abort?.(responseTooLarge(length, this.maxBytes));
    return true;
  }

  onData(chunk: Buffer): boolean {
    this.received += chunk.length;
    if (this.received > this.maxBytes) this.abort?.(responseTooLarge(this.received, this.maxBytes));
    else this.chunks.push(chunk);
    return true;
  }

  onComplete(): void {
    if (this.settle()) return;
    const only = this.chunks.length === 1 ? this.chunks[0] : undefined;
    const text = (only ?? Buffer.concat(this.chunks)).toString('utf8');
    this.resolve({
      status: this.status,
      headers: this.headers,
      ...parseBody(text, this.headers['content-type'], this.maxDepth),
    });
  }

  onError(err: Error): void {
    if (this.settle()) return;
    this.reject(
      err instanceof CallNetworkError ? err : new CallNetworkError(err.message, errnoOf(err), { cause: err }),
    );
  }

  /** True when the call was settled already; else marks it settled. */
  private settle(): boolean {
    if (this.settled) return true;
    this.settled = true;
    this.cancellation.onCancel(undefined);
    return false;
  }
}

/**
 * The host of each origin (`http://hotel` → `hotel`), the Host header or `:authority` of its
 * calls, parsed once: the definitions name a handful of origins (the cache is bounded all the same).
 */
export function originHosts(): (origin: string) => string {
  const hosts = new Map<string, string>();
  return (origin) => {
    let host = hosts.get(origin);
    if (host !== undefined) return host;
    if (hosts.size >= 1000) hosts.clear();
    hosts.set(origin, (host = new URL(origin).host));
    return host;
  };
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
  const hostOf = originHosts();

  return {
    call(request) {
      const hasBody = request.body !== undefined;
      const headers: Record<string, string> = { ...request.headers, host: hostOf(request.origin) };
      if (hasBody) headers['content-type'] = 'application/json';
      return new Promise<CallResponse>((resolve, reject) => {
        const handler = new CallHandler(request.cancellation, maxBytes, maxDepth, resolve, reject);
        try {
          pool.dispatch(
            {
              origin: options.egressUrl,
              method: request.method,
              path: request.path,
              headers,
              ...(hasBody ? { body: JSON.stringify(request.body) } : {}),
            },
            handler,
          );
        } catch (err) {
          handler.onError(err instanceof Error ? err : new Error(String(err)));
        }
      });
    },
    close: () => pool.close(),
  };
}
