/**
 * The "trips" upstream app that sits behind Envoy's ingress listener. It knows nothing about sagas:
 * it echoes every request back so tests can see what Envoy (and sagamesh's header/body mutations)
 * delivered — for requests that match no saga (pass-through) and for pivot-mode sagas, where this
 * app's answer decides commit or compensate.
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:http';
import { parseFault, sleep } from './faults';
import { BodyTooLargeError, closeServer, listenOn, nowMs, readBody, sendJson } from './participant';

export interface AppCall {
  /** arrival order, from 1 (restarts at 1 after reset) */
  seq: number;
  method: string;
  /** request target as received, query included */
  path: string;
  /** every header received (node lower-cases names) */
  headers: IncomingHttpHeaders;
  /** raw request body as UTF-8 text ('' when none) */
  body: string;
  status: number;
  startedAt: number;
  finishedAt: number;
}

/** What the app answers (status 200) for every request that does not fail. */
export interface AppEcho {
  app: 'trips';
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  /** parsed JSON, else the raw text, else null when the body is empty */
  body: unknown;
}

export interface App {
  /** Starts listening; resolves the bound port (0 = ephemeral). Host defaults to 127.0.0.1. */
  listen(port: number, host?: string): Promise<number>;
  /** Stops listening, drops open connections and abandons pending slow answers. */
  close(): Promise<void>;
  /** Completed calls in arrival order; `GET /healthz` is not recorded. */
  calls(): AppCall[];
  reset(): void;
}

export interface AppOptions {
  /** receives one JSON line (no newline) per request served */
  logger?: (line: string) => void;
}

export function createApp(opts: AppOptions = {}): App {
  let callLog: AppCall[] = [];
  let seq = 0;
  /** aborted on reset()/close() so parked slow answers end promptly */
  let epoch = new AbortController();

  /** Answers one request; returns the status sent and the raw body for the call record. */
  async function answer(req: IncomingMessage, res: ServerResponse): Promise<{ status: number; raw: string }> {
    const method = req.method ?? 'GET';
    const path = req.url ?? '/';
    let rawBuf: Buffer;
    try {
      rawBuf = await readBody(req);
    } catch (err) {
      if (!(err instanceof BodyTooLargeError)) throw err;
      sendJson(res, 413, { error: 'too_large' }, { connection: 'close' });
      return { status: 413, raw: '' };
    }
    const raw = rawBuf.toString('utf8');

    if (method === 'GET' && path.split('?')[0] === '/healthz') {
      sendJson(res, 200, { ok: true, app: 'trips' });
      return { status: 200, raw };
    }

    let body: unknown = null;
    if (raw !== '') {
      try {
        body = JSON.parse(raw) as unknown;
      } catch {
        body = raw;
      }
    }

    // Faults only apply to JSON object bodies; a bad fault value is echoed like any other field,
    // because the app must stay a transparent upstream for pass-through tests.
    const f = parseFault(body);
    if (f.ok && f.fault?.kind === 'fail') {
      sendJson(res, 500, { error: 'app_failed' });
      return { status: 500, raw };
    }
    if (f.ok && f.fault?.kind === 'slow' && !(await sleep(f.fault.ms, epoch.signal))) {
      sendJson(res, 503, { error: 'unavailable', message: 'trips was reset' });
      return { status: 503, raw };
    }

    const echo: AppEcho = { app: 'trips', method, path, headers: req.headers, body };
    sendJson(res, 200, echo);
    return { status: 200, raw };
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const startedAt = nowMs();
    const callSeq = ++seq;
    const callEpoch = epoch;
    let status: number;
    let raw = '';
    try {
      ({ status, raw } = await answer(req, res));
    } catch (err) {
      status = 500;
      sendJson(res, 500, { error: 'internal', message: err instanceof Error ? err.message : String(err) });
    }
    const finishedAt = nowMs();
    const method = req.method ?? 'GET';
    const path = req.url ?? '/';
    const isHealth = method === 'GET' && path.split('?')[0] === '/healthz';
    if (!isHealth && callEpoch === epoch) {
      callLog.push({
        seq: callSeq,
        method,
        path,
        headers: req.headers,
        body: raw,
        status,
        startedAt,
        finishedAt,
      });
    }
    opts.logger?.(
      JSON.stringify({
        level: 30,
        time: Date.now(),
        service: 'trips',
        msg: 'request',
        method,
        path,
        status,
        ms: Math.round((finishedAt - startedAt) * 10) / 10,
      }),
    );
  }

  const server = createServer((req, res) => {
    void handle(req, res);
  });

  return {
    listen: (port, host = '127.0.0.1') => listenOn(server, port, host),
    async close(): Promise<void> {
      epoch.abort();
      epoch = new AbortController();
      await closeServer(server);
    },
    calls: () => [...callLog].sort((a, b) => a.seq - b.seq),
    reset(): void {
      epoch.abort();
      epoch = new AbortController();
      callLog = [];
      seq = 0;
    },
  };
}
