import path from 'node:path';
import { DIRECT_ENTRY } from '../layout';
import type { Target } from '../load/target';
import { canConnect, freePort, spawnLogged, waitFor } from '../processes';
import { sagaRequest } from '../topology';
import type { SagaSpec, System } from './system';
import { failsAt } from './system';

/**
 * The floor: bench/direct/main.ts calls the participants itself, in parallel, through the same
 * Envoy egress (see that file for exactly what it does per saga).
 */
export async function startDirect(runDir: string, egressUrl: string): Promise<System> {
  const port = await freePort();
  const child = spawnLogged(
    'direct',
    process.execPath,
    [DIRECT_ENTRY, JSON.stringify({ port, egressUrl })],
    path.join(runDir, 'direct.log'),
  );
  await waitFor(child, () => canConnect(port));
  return {
    id: 'direct',
    label: 'direct (client calls participants, no coordinator)',
    available: true,
    pid: child.pid,
    targets: (spec: SagaSpec) => {
      const url = `http://127.0.0.1:${port}/direct/${spec.topology.name}`;
      const ok: Target = {
        method: 'POST',
        url,
        body: JSON.stringify(sagaRequest(spec.topology, spec.latencyMs)),
        headers: { 'content-type': 'application/json' },
      };
      const failing: Target = {
        ...ok,
        body: JSON.stringify(sagaRequest(spec.topology, spec.latencyMs, true)),
      };
      let i = 0;
      return () => (failsAt(i++, spec.failEvery) ? failing : ok);
    },
  };
}
