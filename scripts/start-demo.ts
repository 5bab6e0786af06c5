import { startStack } from '../demo/stack';

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
    stack.stop().then(
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
