/**
 * Runs one demo service as a process:
 *
 *   node dist/demo/main.js <hotel|flight|car|trips> [port]
 *
 * Port: argument, else env PORT, else the service default (8081/8082/8083/8084); 0 = ephemeral.
 * Host: env HOST, default 127.0.0.1. One JSON line per request on stdout. SIGTERM/SIGINT close
 * the server and exit 0. A bad service name or port is a usage error: message on stderr, exit 2.
 * Once listening, a `listening` line with the bound port is logged (so a parent can use port 0).
 */
import pino from 'pino';
import { createApp } from './app';
import { createParticipant } from './participant';

export const DEFAULT_PORTS = { hotel: 8081, flight: 8082, car: 8083, trips: 8084 } as const;
export type DemoServiceName = keyof typeof DEFAULT_PORTS;
export const DEMO_SERVICES = Object.keys(DEFAULT_PORTS) as DemoServiceName[];

export interface DemoService {
  readonly name: DemoServiceName;
  listen(port: number, host?: string): Promise<number>;
  close(): Promise<void>;
}

export function isDemoServiceName(s: string): s is DemoServiceName {
  return Object.prototype.hasOwnProperty.call(DEFAULT_PORTS, s);
}

/** The participant for hotel/flight/car, the echo app for trips. */
export function createDemoService(
  name: DemoServiceName,
  opts: { logger?: (line: string) => void } = {},
): DemoService {
  const svc = name === 'trips' ? createApp(opts) : createParticipant(name, opts);
  return { name, listen: (port, host) => svc.listen(port, host), close: () => svc.close() };
}

export interface DemoArgs {
  name: DemoServiceName;
  port: number;
  host: string;
}

/** Parses argv (without node and script) and env; returns a usage message instead of throwing. */
export function parseDemoArgs(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
): { ok: true; args: DemoArgs } | { ok: false; message: string } {
  const usage = `usage: main.js <${DEMO_SERVICES.join('|')}> [port]   (env: PORT, HOST)`;
  const [name, portArg] = argv;
  if (name === undefined || !isDemoServiceName(name)) {
    return {
      ok: false,
      message: `${name === undefined ? 'missing service name' : `unknown service "${name}"`}\n${usage}`,
    };
  }
  if (argv.length > 2) return { ok: false, message: `too many arguments\n${usage}` };
  const portText = portArg ?? env.PORT;
  let port: number = DEFAULT_PORTS[name];
  if (portText !== undefined && portText !== '') {
    if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) {
      return { ok: false, message: `invalid port "${portText}" (0-65535)\n${usage}` };
    }
    port = Number(portText);
  }
  const host = env.HOST !== undefined && env.HOST !== '' ? env.HOST : '127.0.0.1';
  return { ok: true, args: { name, port, host } };
}

/** Process entry point. Resolves once the service is listening; signals end the process. */
export async function main(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<void> {
  const parsed = parseDemoArgs(argv, env);
  if (!parsed.ok) {
    process.stderr.write(`${parsed.message}\n`);
    process.exit(2);
  }
  const { name, port, host } = parsed.args;
  const log = pino({ base: { service: name, pid: process.pid } });
  // Request lines are already JSON in pino's shape; write them straight through (pino's default
  // stdout destination is synchronous, so lines never interleave mid-line).
  const svc = createDemoService(name, { logger: (line) => process.stdout.write(`${line}\n`) });

  let bound: number;
  try {
    bound = await svc.listen(port, host);
  } catch (err) {
    log.fatal({ err, port, host }, 'listen failed');
    process.exit(1);
  }
  log.info({ port: bound, host }, 'listening');

  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    svc.close().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'close failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

if (require.main === module) {
  main(process.argv.slice(2), process.env).catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
}
