/**
 * One process that hosts every bench participant (p1…p9, each on its own port), the upstream app
 * of the pass-through case, and a control port:
 *
 *   node dist/bench/participants/main.js '{"participants":{"p1":8101,…},"upstream":8110,"control":8111}'
 *
 * GET /stats on the control port answers every participant's in-flight and peak counts (the memory
 * case reads them); POST /reset-peak restarts the peaks. Prints `ready` once everything listens;
 * SIGTERM/SIGINT exit.
 */
import type { Server } from 'node:http';
import { createServer } from 'node:http';
import { createBenchParticipant } from './participant';

interface Ports {
  participants: Record<string, number>;
  upstream: number;
  control: number;
}

function listen(server: Server, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
}

async function main(): Promise<void> {
  const ports = JSON.parse(process.argv[2] ?? '{}') as Ports;
  const participants = Object.entries(ports.participants).map(([name, port]) => ({
    p: createBenchParticipant(name),
    port,
  }));
  for (const { p, port } of participants) await listen(p.server, port);

  // The pass-through case's upstream: as cheap as an answer gets, so the case measures Envoy.
  const body = JSON.stringify({ ok: true });
  const upstream = createServer((req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
    res.end(body);
  });
  upstream.keepAliveTimeout = 60_000;
  await listen(upstream, ports.upstream);

  const control = createServer((req, res) => {
    req.resume();
    if (req.method === 'POST' && req.url === '/reset-peak') for (const { p } of participants) p.resetPeak();
    const text = JSON.stringify({ participants: participants.map(({ p }) => p.stats()) });
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(text);
  });
  await listen(control, ports.control);
  process.stdout.write('ready\n');
}

process.once('SIGTERM', () => process.exit(0));
process.once('SIGINT', () => process.exit(0));
main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
