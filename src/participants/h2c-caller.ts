import http2 from 'node:http2';
import net from 'node:net';
import type { ClientHttp2Session, ClientHttp2Stream, IncomingHttpHeaders } from 'node:http2';
import { DEFAULT_BODY_LIMITS } from '../json-limits';
import type { CallResponse, HttpCaller, StepHttpRequest } from '../engine/http-caller';
import { callCancelled, CallNetworkError, responseTooLarge } from '../engine/http-caller';
import { errnoOf, originHosts, parseBody } from './step-caller';

/**
 * The HTTP/2 step caller (SAGAMESH_EGRESS_PROTOCOL=h2c): the same contract as the HTTP/1.1 one in
 * step-caller.ts, over a few cleartext HTTP/2 sessions (prior knowledge, no upgrade) to Envoy's
 * egress listener. Every call is one stream, so 40,000 calls in progress need 40,000 streams on a
 * handful of sockets instead of 40,000 sockets.
 *
 * The definition's origin host becomes `:authority`, which the egress routes on exactly as it
 * routes HTTP/1.1 on Host. A step timeout cancels the call, which resets the stream (CANCEL).
 *
 * Whether a failed call may have been applied is what the saga's compensation depends on: a call
 * that HTTP/2 proves was never processed — refused stream, above a GOAWAY's last stream id, or
 * never given a stream id at all — fails with errno UNPROCESSED_STREAM (or the socket's own
 * ECONNREFUSED), which the classifier in src/engine/outcome.ts counts as not sent. Anything else
 * after the request left (a reset, a lost connection) stays "may have been applied".
 */
export const UNPROCESSED_STREAM = 'UNPROCESSED_STREAM';

export interface H2cCallerOptions {
  /** Envoy's egress listener, e.g. http://127.0.0.1:10001. */
  readonly egressUrl: string;
  /** HTTP/2 sessions the streams are spread over (Envoy serves each on one worker thread). */
  readonly sessions?: number;
  /** Largest participant response body read, in bytes. */
  readonly maxResponseBytes?: number;
  /** Deepest JSON body read (SAGAMESH_MAX_BODY_DEPTH); a deeper one is unreadable. */
  readonly maxBodyDepth?: number;
}

export const DEFAULT_H2C_SESSIONS = 4;

/** Headers HTTP/2 forbids (RFC 9113 §8.2.2) or that `:authority` replaces. */
const NOT_FORWARDED = new Set([
  'host',
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
]);

/** One session and what its streams need to know about it. */
interface Session {
  readonly session: ClientHttp2Session;
  active: number;
  /** Set by a GOAWAY: streams above it were not processed by the peer. */
  goawayLastStreamId?: number;
  /** Why the session ended, when it ended with an error. */
  error?: Error;
}

function connectionOf(egressUrl: string): () => Session {
  return () => {
    const session = http2.connect(egressUrl, {
      // Small frames (a step's HEADERS, then its DATA) go out at once, as undici's sockets do.
      createConnection: (authority: URL) =>
        net.connect({ host: authority.hostname, port: Number(authority.port || 80), noDelay: true }),
      settings: { enablePush: false },
      // nghttp2's per-session memory cap (MB); 10 MB (the default) is not enough for ~10,000 streams.
      maxSessionMemory: 256,
    });
    const entry: Session = { session, active: 0 };
    session.on('goaway', (_code: number, lastStreamId: number) => {
      entry.goawayLastStreamId = lastStreamId;
    });
    // Without a listener an 'error' would crash the process; the streams see the error themselves.
    session.on('error', (err: Error) => {
      entry.error = err;
    });
    return entry;
  };
}

/** Whether `code` is on the error or anywhere in its cause chain (errors of any realm). */
function hasCode(err: unknown, code: string): boolean {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined; e; e = e.cause as typeof e)
    if (e.code === code) return true;
  return false;
}

function headerRecord(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) {
    if (k.startsWith(':') || v === undefined) continue;
    out[k] = Array.isArray(v) ? v.join(', ') : String(v);
  }
  return out;
}

export function createH2cCaller(options: H2cCallerOptions): HttpCaller {
  const maxBytes = options.maxResponseBytes ?? 1024 * 1024;
  const maxDepth = options.maxBodyDepth ?? DEFAULT_BODY_LIMITS.maxDepth;
  const slots: (Session | undefined)[] = new Array<Session | undefined>(
    options.sessions ?? DEFAULT_H2C_SESSIONS,
  ).fill(undefined);
  const connect = connectionOf(options.egressUrl);
  const hostOf = originHosts();
  const all = new Set<Session>();

  const usable = (s: Session | undefined): s is Session =>
    s !== undefined && !s.session.closed && !s.session.destroyed && s.goawayLastStreamId === undefined;

  /** The open session with the fewest streams; an empty or ended slot gets a new session. */
  function pick(): Session {
    let best: Session | undefined;
    for (let i = 0; i < slots.length; i++) {
      let slot = slots[i];
      if (!usable(slot)) {
        slot = connect();
        const created = slot;
        all.add(created);
        created.session.on('close', () => all.delete(created));
        slots[i] = created;
      }
      if (best === undefined || slot.active < best.active) best = slot;
    }
    if (best === undefined) throw new Error('h2c caller: no session slots');
    return best;
  }

  function call(request: StepHttpRequest): Promise<CallResponse> {
    return new Promise<CallResponse>((resolve, reject) => {
      const { cancellation } = request;
      if (cancellation.cancelled) {
        reject(callCancelled());
        return;
      }
      const payload = request.body !== undefined ? Buffer.from(JSON.stringify(request.body)) : undefined;
      const headers: http2.OutgoingHttpHeaders = {
        ':method': request.method,
        ':path': request.path,
        ':scheme': 'http',
        ':authority': hostOf(request.origin),
      };
      for (const [k, v] of Object.entries(request.headers))
        if (!NOT_FORWARDED.has(k.toLowerCase())) headers[k] = v;
      if (payload !== undefined) {
        headers['content-type'] = 'application/json';
        headers['content-length'] = payload.length;
      }

      const entry = pick();
      let stream: ClientHttp2Stream;
      try {
        stream = entry.session.request(headers, { endStream: payload === undefined });
      } catch (err) {
        // The session refused to open the stream: nothing was written for it.
        reject(
          new CallNetworkError(`h2c: stream not opened: ${String(err)}`, UNPROCESSED_STREAM, { cause: err }),
        );
        return;
      }
      entry.active++;

      let settled = false;
      let streamError: Error | undefined;
      let status = 0;
      let responseHeaders: Record<string, string> = {};
      const chunks: Buffer[] = [];
      let received = 0;

      const settle = (fn: () => void): void => {
        if (settled) return;
        settled = true;
        cancellation.onCancel(undefined);
        fn();
      };
      const fail = (message: string, errno: string | undefined, cause?: unknown): void =>
        settle(() =>
          reject(new CallNetworkError(message, errno, cause !== undefined ? { cause } : undefined)),
        );
      const tooLarge = (bytes: number): void => {
        stream.close(http2.constants.NGHTTP2_CANCEL);
        settle(() => reject(responseTooLarge(bytes, maxBytes)));
      };
      function onCancelled(): void {
        stream.close(http2.constants.NGHTTP2_CANCEL);
        settle(() => reject(callCancelled()));
      }
      cancellation.onCancel(onCancelled);

      stream.on('response', (h) => {
        status = Number(h[':status']);
        responseHeaders = headerRecord(h);
        const declared = Number(responseHeaders['content-length'] ?? 0);
        if (declared > maxBytes) tooLarge(declared);
      });
      stream.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (received > maxBytes) tooLarge(received);
        else chunks.push(chunk);
      });
      stream.on('end', () => {
        if (status === 0) return; // no response headers: 'close' classifies it
        const text = Buffer.concat(chunks).toString('utf8');
        settle(() =>
          resolve({
            status,
            headers: responseHeaders,
            ...parseBody(text, responseHeaders['content-type'], maxDepth),
          }),
        );
      });
      stream.on('error', (err: Error) => {
        streamError = err;
      });
      stream.on('close', () => {
        entry.active--;
        if (settled) return;
        const cause = streamError ?? entry.error;
        const detail = cause?.message ?? `stream closed with code ${stream.rstCode}`;
        const id = stream.id;
        if (id === undefined) {
          // Never given a stream id: its HEADERS never left. Keep the socket's own ECONNREFUSED.
          const refused = hasCode(cause, 'ECONNREFUSED') || hasCode(entry.error, 'ECONNREFUSED');
          fail(`h2c: stream not opened: ${detail}`, refused ? 'ECONNREFUSED' : UNPROCESSED_STREAM, cause);
        } else if (entry.goawayLastStreamId !== undefined && id > entry.goawayLastStreamId) {
          fail(
            `h2c: stream ${id} above GOAWAY last-stream-id ${entry.goawayLastStreamId}: not processed`,
            UNPROCESSED_STREAM,
            cause,
          );
        } else if (stream.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM) {
          fail(`h2c: stream ${id} refused by the egress (REFUSED_STREAM)`, UNPROCESSED_STREAM, cause);
        } else {
          fail(`h2c: ${detail}`, errnoOf(cause), cause);
        }
      });

      if (payload !== undefined) stream.end(payload);
    });
  }

  return {
    call,
    async close() {
      await Promise.all(
        [...all].map(
          (s) =>
            new Promise<void>((resolve) => {
              if (s.session.destroyed) resolve();
              else s.session.close(() => resolve());
            }),
        ),
      );
      slots.fill(undefined);
    },
  };
}
