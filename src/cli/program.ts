import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import type { ConfigOverrides } from '../config/config';
import { ERRORS, SagameshError } from '../errors';
import { DEFAULTS, ENV_VARS, MAX_DEADLINE_MS_RANGE } from '../config/config';
import { AdminClient, defaultAdminUrl } from './admin-client';
import type { GraphFormat } from './graph';
import { GRAPH_FORMATS, graph } from './graph';
import type { CliIo } from './io';
import { reportError } from './report';
import { abort, inspect, list, retry } from './sagas';
import { validate } from './validate';

/**
 * The `sagamesh` command line. Every command resolves to an exit status: 0 done, 1 failed. Every
 * failure — commander's usage errors included — ends with one coded line on stderr
 * (`sagamesh: SAGAMESH_ERR_…: message`, then one detail per line); stdout carries only what was
 * asked for (a report, a chart, a table, JSON). `serve` is injected so tests can run the rest
 * in-process without starting a server.
 */

export type Serve = (flags: ConfigOverrides) => Promise<number>;

/** Flags of `serve`, each the same setting as its SAGAMESH_* variable. */
const SERVE_FLAGS: readonly [flag: string, key: keyof ConfigOverrides][] = [
  ['--sagas-dir <dir>', 'sagasDir'],
  ['--grpc-addr <address>', 'grpcAddress'],
  ['--admin-addr <host:port>', 'adminAddress'],
  ['--egress-url <url>', 'egressUrl'],
  ['--store <url>', 'store'],
  ['--log-level <level>', 'logLevel'],
];

export function createProgram(io: CliIo, serve: Serve, exit: (code: number) => void): Command {
  const program = new Command('sagamesh')
    .description('Distributed sagas inside the service mesh: an Envoy ext_proc service')
    // Help asked for goes to stdout; commander's own error text (and the help it prints after an
    // error) is dropped: runCli reports the CommanderError as SAGAMESH_ERR_CLI_USAGE instead.
    .configureOutput({ writeOut: io.stdout, writeErr: () => undefined, outputError: () => undefined })
    .exitOverride();
  const maxDeadline = (): Option =>
    new Option('--max-deadline-ms <ms>', 'longest deadline a saga may declare')
      .default(io.env[ENV_VARS.maxDeadlineMs] ?? String(DEFAULTS.maxDeadlineMs))
      .argParser((v) => {
        const n = Number(v);
        const { min, max } = MAX_DEADLINE_MS_RANGE;
        // InvalidArgumentError: commander adds the option and the value, and ends in a usage error.
        if (!Number.isInteger(n) || n < min || n > max)
          throw new InvalidArgumentError(`must be an integer from ${min} to ${max}`);
        return v;
      });
  const adminOptions = (command: Command): Command =>
    command
      .option('--admin <url>', 'admin API base URL', defaultAdminUrl(io.env))
      .option('--token <token>', 'admin token (default: $SAGAMESH_ADMIN_TOKEN)');
  const client = (opts: { admin: string; token?: string }): AdminClient => {
    const token = opts.token ?? io.env['SAGAMESH_ADMIN_TOKEN'];
    return new AdminClient({ baseUrl: opts.admin, ...(token ? { token } : {}) });
  };
  const run = (work: () => Promise<number>): Promise<void> =>
    work().then(exit, (err: unknown) => {
      reportError(io, err);
      exit(1);
    });

  const serveCommand = program
    .command('serve')
    .description('run sagamesh (what `npm start` runs); flags override SAGAMESH_* variables');
  for (const [flag] of SERVE_FLAGS) serveCommand.option(flag);
  serveCommand.action((opts: Record<string, string | undefined>) =>
    run(() => {
      const flags: ConfigOverrides = {};
      for (const [flag, key] of SERVE_FLAGS) {
        const name = flag.slice(2, flag.indexOf(' ')).replace(/-(\w)/g, (_, c: string) => c.toUpperCase());
        const value = opts[name];
        if (value !== undefined) flags[key] = value;
      }
      return serve(flags);
    }),
  );

  program
    .command('validate')
    .description('check saga definitions (files or directories); every problem with file:line and field path')
    .argument('<paths...>', 'saga files or directories')
    .addOption(maxDeadline())
    .action((paths: string[], opts: { maxDeadlineMs: string }) =>
      run(() => validate(paths, { maxDeadlineMs: Number(opts.maxDeadlineMs) }, io)),
    );

  program
    .command('graph')
    .description("print a saga's state chart, derived from the machine the server runs")
    .argument('<file>', 'saga definition file')
    .addOption(new Option('--format <format>', 'output format').choices(GRAPH_FORMATS).default('mermaid'))
    .addOption(maxDeadline())
    .action((file: string, opts: { format: GraphFormat; maxDeadlineMs: string }) =>
      run(() => graph(file, { format: opts.format, maxDeadlineMs: Number(opts.maxDeadlineMs) }, io)),
    );

  adminOptions(
    program
      .command('list')
      .description('list recent sagas (admin API)')
      .option('--status <status>', 'running, succeeded, compensating, compensated, stuck or failed')
      .option('--definition <name>', 'only sagas of this definition')
      .option('--since <time>', 'started at or after (epoch ms or ISO 8601)')
      .option('--limit <n>', 'at most this many (1-1000)')
      .option('--json', 'print the API answer as JSON'),
  ).action(
    (opts: {
      admin: string;
      token?: string;
      json?: boolean;
      status?: string;
      definition?: string;
      since?: string;
      limit?: string;
    }) => run(() => list(client(opts), opts, Boolean(opts.json), io)),
  );

  adminOptions(
    program
      .command('inspect')
      .description('show one saga: its history and every call (admin API)')
      .argument('<saga-id>')
      .option('--json', 'print the API answer as JSON'),
  ).action((sagaId: string, opts: { admin: string; token?: string; json?: boolean }) =>
    run(() => inspect(client(opts), sagaId, Boolean(opts.json), io)),
  );

  adminOptions(
    program
      .command('abort')
      .description('compensate a running saga (admin API; needs the admin token)')
      .argument('<saga-id>')
      .option('--reason <text>', 'why, recorded with the saga'),
  ).action((sagaId: string, opts: { admin: string; token?: string; reason?: string }) =>
    run(() => abort(client(opts), sagaId, opts.reason, io)),
  );

  adminOptions(
    program
      .command('retry')
      .description("re-drive a stuck saga's compensations (admin API; needs the admin token)")
      .argument('<saga-id>'),
  ).action((sagaId: string, opts: { admin: string; token?: string }) =>
    run(() => retry(client(opts), sagaId, io)),
  );

  return program;
}

/** Parses `argv` (without node and script) and runs the command; resolves with the exit status. */
export async function runCli(argv: readonly string[], io: CliIo, serve: Serve): Promise<number> {
  let code = 0;
  const program = createProgram(io, serve, (c) => {
    code = c;
  });
  try {
    await program.parseAsync([...argv], { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError && err.exitCode === 0) return 0; // --help
    reportError(io, err instanceof CommanderError ? usageError(err, commandOf(program, argv)) : err);
    return 1;
  }
  return code;
}

/** A commander usage error as SAGAMESH_ERR_CLI_USAGE, with where to read the usage. */
function usageError(err: CommanderError, command: string | undefined): SagameshError {
  // 'commander.help' with exit code 1: no command was given (commander would print the help).
  const message = err.code === 'commander.help' ? 'a command is needed' : err.message.replace(/^error: /, '');
  return new SagameshError(ERRORS.CLI_USAGE, message, [
    `see 'sagamesh${command ? ` ${command}` : ''} --help'`,
  ]);
}

/** The subcommand named on the command line, if it is one. */
function commandOf(program: Command, argv: readonly string[]): string | undefined {
  const names = new Set(program.commands.map((c) => c.name()));
  return argv.find((a) => names.has(a));
}
