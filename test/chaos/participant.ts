import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { CallEvent, Host, ParticipantEvent } from './model';
import { HOSTS } from './model';

/**
 * The chaos participants: one HTTP/1.1 server per participant cluster of envoy/envoy.yaml (hotel,
 * flight, car, trips), each with its own effects. A participant knows nothing of sagas beyond the
 * plain-HTTP conventions one relies on, and keeps them strictly:
 *
 * - an action (`POST /effects`) is applied at most once per `idempotency-key`; a replay gets the
 *   same effect. A refusal sticks to its key (a refused key is never applied later), and a key
 *   never refuses once it was applied — a refusal on replay tells sagamesh "nothing to undo";
 * - an undo (`DELETE /effects/<id>`, or `DELETE /sagas/<saga>/steps/<step>` by the action's key) is
 *   applied at most once; undoing a key that was not applied yet tombstones it: the action, even
 *   one already on its way (slow), is then never applied — a late replay cannot resurrect it;
 * - the trips server is also the pivot upstream of `respond: upstream` sagas: it commits a saga's
 *   request (once per saga id), refuses it, fails, or commits after a delay — but never once the
 *   caller is gone (as a transaction rolls back when its connection drops).
 *
 * Faults come from the `x-chaos-faults` header, a JSON list with one entry per call of that key
 * (model.ts, CallFault). Every request, effect, undo and commit is recorded, in order, with its
 * time: the checker's only view of what really happened.
 */
export interface ChaosParticipants {
  /** Listens on 127.0.0.1 (port 0: any free port). */
  listen(ports: Readonly<Record<Host, number>>): Promise<void>;
  /** The ports listened on. */
  ports(): Record<Host, number>;
  close(): Promise<void>;
  /** Every event recorded so far, in order. */
  events(): readonly ParticipantEvent[];
  /** Slow effects and undos still waiting to happen (quiet when 0). */
  pending(): number;
  /** Called synchronously when a call arrives, before it is handled (fault triggers). */
  onArrival(listener: (kind: CallEvent['kind']) => void): () => void;
  /** Counts of the faults applied, by kind (`5xx`, `drop`, …) and call kind. */
  faultCounts(): Readonly<Record<string, number>>;
}

interface Effect {
  readonly id: string;
  readonly key: string;
  state: 'applied' | 'undone';
}

/** An event before the sink numbers and times it (Omit distributed over the union). */
type Unrecorded<T> = T extends unknown ? Omit<T, 'seq' | 'at'> : never;
type Sink = (event: Unrecorded<ParticipantEvent>) => void;

const GARBAGE = '{"id":"'; // JSON content type, cut short

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
}

function parseScript(text: string | undefined): readonly string[] {
  if (!text) return [];
  try {
    const v: unknown = JSON.parse(text);
    return Array.isArray(v) ? v.map(String) : [String(v)];
  } catch {
    return [text];
  }
}

/** The pivot upstream's planned behaviour, from the request body's `upstream` field. */
function upstreamFault(text: string): string {
  try {
    const body = JSON.parse(text) as { upstream?: unknown };
    return typeof body.upstream === 'string' ? body.upstream : 'commit';
  } catch {
    return 'commit';
  }
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function slowMs(fault: string): number | undefined {
  const m = /^slow:(\d+)$/.exec(fault);
  return m ? Number(m[1]) : undefined;
}

/** One participant host: its effects, and the handlers that apply and undo them. */
function createHost(host: Host, sink: Sink, track: <T>(p: Promise<T>) => Promise<T>) {
  const effects = new Map<string, Effect>();
  const byId = new Map<string, Effect>();
  const applying = new Map<string, Promise<Effect | undefined>>();
  const undoing = new Map<string, Promise<void>>();
  const refused = new Set<string>();
  const tombstones = new Set<string>();
  const counts = new Map<string, number>();
  let nextId = 0;

  const count = (kind: string, key: string): number => {
    const n = counts.get(`${kind}|${key}`) ?? 0;
    counts.set(`${kind}|${key}`, n + 1);
    return n;
  };

  const context = (req: IncomingMessage) => {
    const sagaId = header(req, 'x-sagamesh-saga-id');
    const step = header(req, 'x-sagamesh-step');
    const definition = header(req, 'x-chaos-def');
    const ref = header(req, 'x-chaos-ref');
    return {
      host,
      ...(sagaId !== undefined ? { sagaId } : {}),
      ...(step !== undefined ? { step } : {}),
      ...(definition !== undefined ? { definition } : {}),
      ...(ref !== undefined ? { ref } : {}),
    };
  };

  const apply = (key: string, ctx: ReturnType<typeof context>): Effect | undefined => {
    const existing = effects.get(key);
    if (existing) return existing;
    if (tombstones.has(key)) {
      sink({ type: 'suppressed', key, ...ctx });
      return undefined;
    }
    const effect: Effect = { id: `${host}-${++nextId}`, key, state: 'applied' };
    effects.set(key, effect);
    byId.set(effect.id, effect);
    sink({ type: 'applied', key, effectId: effect.id, ...ctx });
    return effect;
  };

  /** The effect of `key` once any slow apply in progress has ended. */
  const settled = async (key: string): Promise<Effect | undefined> => {
    const inProgress = applying.get(key);
    if (inProgress) await inProgress;
    return effects.get(key);
  };

  const undo = (key: string, effect: Effect | undefined, ctx: ReturnType<typeof context>): void => {
    if (effect) {
      if (effect.state === 'applied') {
        effect.state = 'undone';
        sink({ type: 'undone', key, effectId: effect.id, ...ctx });
      }
    } else if (!tombstones.has(key)) {
      tombstones.add(key);
      sink({ type: 'tombstoned', key, ...ctx });
    }
  };

  type Answer = { status: number; body?: unknown; garbage?: boolean; drop?: boolean };

  async function action(req: IncomingMessage, fault: string): Promise<Answer> {
    const key = header(req, 'idempotency-key');
    if (!key) return { status: 400, body: { error: 'idempotency-key required' } };
    const ctx = context(req);
    if (fault === '5xx') return { status: 503, body: { error: 'unavailable (planned)' } };
    let effect = await settled(key);
    if (!effect && tombstones.has(key)) return { status: 409, body: { error: 'undone before applied', key } };
    if (!effect && refused.has(key)) return { status: 409, body: { error: 'refused', key } };
    const ms = slowMs(fault);
    if (!effect && fault === 'refuse') {
      refused.add(key);
      return { status: 409, body: { error: 'refused (planned)', key } };
    }
    if (ms !== undefined) {
      if (effect) {
        await sleep(ms);
      } else {
        // Not tied to the caller: it may have given up long before the effect is applied.
        const work = track(sleep(ms).then(() => apply(key, ctx)));
        applying.set(key, work);
        try {
          effect = await work;
        } finally {
          if (applying.get(key) === work) applying.delete(key);
        }
        if (!effect) return { status: 409, body: { error: 'undone before applied', key } };
        return { status: 201, body: { id: effect.id, key, state: effect.state } };
      }
    }
    const fresh = !effect;
    effect ??= apply(key, ctx);
    if (!effect) return { status: 409, body: { error: 'undone before applied', key } };
    const body = { id: effect.id, key, state: effect.state };
    if (fault === 'drop') return { status: 0, drop: true };
    if (fault === 'garbage') return { status: 201, garbage: true };
    return { status: fresh ? 201 : 200, body };
  }

  async function compensation(
    req: IncomingMessage,
    fault: string,
    target: { id: string } | { sagaId: string; step: string },
  ): Promise<Answer> {
    const ctx = context(req);
    if (fault === '5xx') return { status: 503, body: { error: 'unavailable (planned)' } };
    let key: string;
    if ('id' in target) {
      const effect = byId.get(target.id);
      if (!effect) return { status: 404, body: { error: 'no such effect', id: target.id } };
      key = effect.key;
    } else {
      key = `${target.sagaId}:${target.step}:action`;
    }
    const run = (): void => undo(key, effects.get(key), ctx);
    const ms = slowMs(fault);
    const inProgress = undoing.get(key);
    if (inProgress) {
      await inProgress;
    } else if (ms !== undefined) {
      const work = track(sleep(ms).then(run));
      undoing.set(key, work);
      try {
        await work;
      } finally {
        if (undoing.get(key) === work) undoing.delete(key);
      }
    } else {
      run();
    }
    const effect = effects.get(key);
    if (fault === 'drop') return { status: 0, drop: true };
    if (fault === 'garbage') return { status: 200, garbage: true };
    if (!effect) return { status: 404, body: { error: 'nothing was applied', key } };
    return { status: 200, body: { id: effect.id, key, state: effect.state } };
  }

  async function upstream(req: IncomingMessage, res: ServerResponse, fault: string): Promise<Answer> {
    const ctx = context(req);
    const receivedAt = Date.now();
    if (fault === 'refuse') return { status: 409, body: { error: 'refused (planned)' } };
    if (fault === 'fail') return { status: 500, body: { error: 'failed (planned)' } };
    const ms = slowMs(fault);
    if (ms !== undefined) await track(sleep(ms));
    // A transaction whose connection is gone rolls back: no commit for a caller that left.
    if (res.destroyed || req.socket.destroyed) return { status: 503, body: { error: 'caller gone' } };
    sink({ type: 'committed', receivedAt, ...ctx });
    return { status: 201, body: { committed: true, sagaId: ctx.sagaId ?? null, ref: ctx.ref ?? null } };
  }

  return { action, compensation, upstream, count, context };
}

export function createChaosParticipants(): ChaosParticipants {
  const events: ParticipantEvent[] = [];
  const listeners = new Set<(kind: CallEvent['kind']) => void>();
  const faults: Record<string, number> = {};
  let seq = 0;
  let pending = 0;
  const sink: Sink = (event) => {
    events.push({ ...event, seq: ++seq, at: Date.now() });
  };
  const track = <T>(p: Promise<T>): Promise<T> => {
    pending++;
    return p.finally(() => pending--);
  };
  const servers: Server[] = [];
  const bound: Partial<Record<Host, number>> = {};

  const serve = (host: Host): Server => {
    const h = createHost(host, sink, track);
    const server = createServer((req, res) => {
      void handle(req, res).catch(() => {
        if (!res.headersSent) res.writeHead(500).end();
      });
    });
    // Envoy keeps upstream connections; closing them first would race its next request (a 503
    // that no plan asked for).
    server.keepAliveTimeout = 65_000;

    async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
      const url = new URL(req.url ?? '/', 'http://participant');
      const method = req.method ?? 'GET';
      const isUpstream = url.pathname.startsWith('/chaos/');
      const kind: CallEvent['kind'] = isUpstream
        ? 'upstream'
        : method === 'DELETE'
          ? 'compensation'
          : 'action';
      for (const listener of listeners) listener(kind);
      let callerGone = false;
      res.on('close', () => {
        if (!res.writableFinished) callerGone = true;
      });
      const text = await readBody(req);
      const key = kind === 'upstream' ? header(req, 'x-sagamesh-saga-id') : header(req, 'idempotency-key');
      const n = h.count(kind, key ?? url.pathname);
      const fault =
        kind === 'upstream' ? upstreamFault(text) : (parseScript(header(req, 'x-chaos-faults'))[n] ?? 'ok');
      let answer;
      if (kind === 'upstream') {
        answer = await h.upstream(req, res, fault);
      } else if (kind === 'action' && url.pathname === '/effects') {
        answer = await h.action(req, fault);
      } else if (kind === 'compensation') {
        const byId = /^\/effects\/([^/]+)$/.exec(url.pathname);
        const byKey = /^\/sagas\/([^/]+)\/steps\/([^/]+)$/.exec(url.pathname);
        answer = byId
          ? await h.compensation(req, fault, { id: decodeURIComponent(byId[1] ?? '') })
          : byKey
            ? await h.compensation(req, fault, {
                sagaId: decodeURIComponent(byKey[1] ?? ''),
                step: decodeURIComponent(byKey[2] ?? ''),
              })
            : { status: 404, body: { error: 'no such route' } };
      } else {
        answer = { status: 404, body: { error: 'no such route' } };
      }
      if (fault !== 'ok' && fault !== 'commit') {
        const name = `${kind}:${fault.split(':')[0] ?? fault}`;
        faults[name] = (faults[name] ?? 0) + 1;
      }
      sink({
        type: 'call',
        kind,
        method,
        path: url.pathname,
        ...(key !== undefined ? { key } : {}),
        n,
        fault,
        status: answer.status,
        callerGone: callerGone || res.destroyed,
        ...h.context(req),
      });
      if (answer.drop) {
        req.socket.destroy();
        return;
      }
      if (res.destroyed) return;
      const payload = answer.garbage ? GARBAGE : JSON.stringify(answer.body ?? {});
      res.writeHead(answer.status, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(payload),
      });
      res.end(payload);
    }
    return server;
  };

  return {
    async listen(ports) {
      for (const host of HOSTS) {
        const server = serve(host);
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen(ports[host], '127.0.0.1', () => {
            server.off('error', reject);
            resolve();
          });
        });
        servers.push(server);
        bound[host] = (server.address() as AddressInfo).port;
      }
    },
    ports: () => ({ hotel: 0, flight: 0, car: 0, trips: 0, ...bound }),
    async close() {
      await Promise.all(
        servers.map(
          (s) =>
            new Promise<void>((resolve) => {
              s.close(() => resolve());
              s.closeAllConnections();
            }),
        ),
      );
      servers.length = 0;
    },
    events: () => events,
    pending: () => pending,
    onArrival(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    faultCounts: () => ({ ...faults }),
  };
}
