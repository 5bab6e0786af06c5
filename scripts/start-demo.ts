import path from 'node:path';
import { renderEnvoyConfig } from '../demo/envoy';
import { REPO_ROOT, startStack } from '../demo/stack';

/**
 * The nested demo's agency: its own Envoy and sagamesh (and log), whose `trips` route is the main
 * stack's ingress, where book-trip runs (demo/agency/agency-trip.yaml).
 */
const AGENCY_PORTS = {
  ingress: 10010,
  egress: 10011,
  admin: 9902,
  extProc: 50052,
  sagameshAdmin: 9092,
  hotel: 8091,
  flight: 8092,
  car: 8093,
  trips: 8094,
} as const;

/**
 * `npm start`: Envoy + sagamesh + the demo services on their default loopback ports, then the
 * commands to try. Ctrl-C stops everything.
 */
async function main(): Promise<void> {
  const verbose = process.argv.includes('--verbose');
  const stack = await startStack({
    env: { SAGAMESH_LOG_LEVEL: process.env['SAGAMESH_LOG_LEVEL'] ?? 'info' },
    onLog: (source, line) => {
      if (verbose || source === 'sagamesh') process.stdout.write(`[${source}] ${line}\n`);
    },
  });
  const agency = await startStack({
    ports: AGENCY_PORTS,
    sagasDir: path.join(REPO_ROOT, 'demo', 'agency'),
    env: {
      SAGAMESH_LOG_LEVEL: process.env['SAGAMESH_LOG_LEVEL'] ?? 'info',
      SAGAMESH_STORE: 'sqlite:./data/agency.db',
    },
    envoyConfig: (ports) => renderEnvoyConfig({ ...ports, trips: stack.ports.ingress }),
    onLog: (source, line) => {
      if (verbose || source === 'sagamesh') process.stdout.write(`[agency ${source}] ${line}\n`);
    },
  }).catch(async (err: unknown) => {
    await stack.stop();
    throw err;
  });
  const base = stack.ingressUrl;
  const trip = (over: Record<string, unknown>): string =>
    JSON.stringify({
      guest: 'Ada',
      hotel: { city: 'Lisbon', nights: 2 },
      flight: { from: 'BER', to: 'LIS' },
      car: { class: 'compact' },
      ...over,
    });
  const curl = (body: string): string =>
    `curl -s -XPOST ${base}/trips -H 'content-type: application/json' -d '${body}'`;
  process.stdout.write(`
sagamesh demo is up:
  Envoy ingress   ${base}        (ext_proc → sagamesh on 127.0.0.1:${stack.ports.extProc})
  Envoy egress    ${stack.egressUrl}        (step calls → hotel :${stack.ports.hotel}, flight :${stack.ports.flight}, car :${stack.ports.car})
  Envoy admin     ${stack.envoy.adminUrl}
  sagamesh UI     ${stack.adminUrl}/ui        (sagas API ${stack.adminUrl}/sagas, metrics ${stack.adminUrl}/metrics)

Try:
  # 1. a trip that succeeds (201, three bookings)
  ${curl(trip({}))}

  # 2. the car step fails: hotel and flight are booked, then cancelled (409)
  ${curl(trip({ car: { class: 'compact', fault: 'fail' } }))}

  # 3. the flight is too slow: it times out, and everything booked is compensated (409)
  ${curl(trip({ flight: { from: 'BER', to: 'LIS', fault: 'slow:5000' } }))}

  # 4. cancel a booked trip later: its bookings are cancelled, car and flight before hotel (200)
  curl -s -XDELETE ${base}/trips/<tripId from 1.>

  # 5. nested: the agency's saga (its own Envoy ${agency.ingressUrl} and sagamesh, UI ${agency.adminUrl}/ui)
  #    books the trip through book-trip above, which records the agency's saga as its parent
  curl -s -XPOST ${agency.ingressUrl}/agency/trips -H 'content-type: application/json' -d '${trip({})}'
  #    a failure at a leaf: book-trip's car fails, book-trip compensates, the agency answers 424
  curl -s -XPOST ${agency.ingressUrl}/agency/trips -H 'content-type: application/json' -d '${trip({ car: { class: 'compact', fault: 'fail' } })}'
  #    cancel a booked agency trip later: it undoes the trip under it (200)
  curl -s -XDELETE ${agency.ingressUrl}/agency/trips/<agencyId from the first curl of 5.>

  # see what the participants hold
  curl -s http://127.0.0.1:${stack.ports.hotel}/bookings
  curl -s http://127.0.0.1:${stack.ports.flight}/bookings
  curl -s http://127.0.0.1:${stack.ports.car}/bookings

Ctrl-C stops everything.
`);
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    process.stdout.write('\nstopping…\n');
    Promise.all([agency.stop(), stack.stop()]).then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(
    `sagamesh demo failed to start: ${err instanceof Error ? err.message : String(err)}\n`,
  );
  process.exit(1);
});
