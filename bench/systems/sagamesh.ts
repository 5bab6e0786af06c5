import fs from 'node:fs';
import path from 'node:path';
import { BENCH_SAGAS_DIR, SAGAMESH_ENTRY } from '../layout';
import type { Target } from '../load/target';
import type { Child } from '../processes';
import { canConnect, freePort, readTail, spawnLogged } from '../processes';
import { sagaPath, sagaRequest } from '../topology';
import type { SagaSpec, System } from './system';
import { failsAt } from './system';

/**
 * sagamesh as the bench runs it: the built entry point (dist/src/main.js), one process per saga-log
 * variant, each behind its own Envoy ingress listener. A variant is nothing but a SAGAMESH_STORE
 * value; a value this build refuses (SAGAMESH_ERR_CONFIG_INVALID at boot) makes the row
 * "not available yet" instead of failing the run.
 *
 * Per saga: client → Envoy ingress → ext_proc stream → sagamesh matches bench/sagas/<shape>-<n>,
 * records the start, runs every step through the Envoy egress (recording dispatch and outcome of
 * each call), compensates on failure, records the end, answers with an ImmediateResponse.
 */
export interface SagameshVariant {
  readonly id: string;
  readonly label: string;
  readonly store: string;
}

export interface SagameshOptions {
  readonly runDir: string;
  readonly extProcPort: number;
  readonly egressUrl: string;
  /** Extra node flags, e.g. --cpu-prof. */
  readonly nodeFlags?: readonly string[];
  readonly logLevel?: string;
  /** Where its definitions are; bench/sagas by default. */
  readonly sagasDir?: string;
}

export interface SagameshProcess {
  readonly child?: Child;
  readonly refused?: string;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Starts one sagamesh; resolves with `refused` (the boot error line) when it will not run. */
export async function startSagamesh(
  variant: SagameshVariant,
  options: SagameshOptions,
): Promise<SagameshProcess> {
  if (!fs.existsSync(SAGAMESH_ENTRY)) throw new Error(`${SAGAMESH_ENTRY} missing: npm run build first`);
  const dir = path.join(options.runDir, `sagamesh-${variant.id}`);
  fs.mkdirSync(dir, { recursive: true });
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    SAGAMESH_STORE: variant.store,
    SAGAMESH_GRPC_ADDR: `127.0.0.1:${options.extProcPort}`,
    SAGAMESH_EGRESS_URL: options.egressUrl,
    SAGAMESH_SAGAS_DIR: options.sagasDir ?? BENCH_SAGAS_DIR,
    SAGAMESH_ADMIN_ADDR: `127.0.0.1:${await freePort()}`,
    SAGAMESH_LOG_LEVEL: options.logLevel ?? 'info',
  };
  const child = spawnLogged(
    `sagamesh-${variant.id}`,
    process.execPath,
    [...(options.nodeFlags ?? []), SAGAMESH_ENTRY],
    path.join(options.runDir, `sagamesh-${variant.id}.log`),
    { cwd: dir, env },
  );
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (!child.running()) {
      await child.exited;
      const tail = readTail(child.logFile);
      const refusal = tail.split('\n').find((l) => l.includes('SAGAMESH_ERR_'));
      if (refusal?.includes('SAGAMESH_ERR_CONFIG_INVALID')) return { refused: refusal.trim() };
      throw new Error(`sagamesh (${variant.id}) exited at boot:\n${tail}`);
    }
    if (await canConnect(options.extProcPort)) return { child };
    if (Date.now() > deadline)
      throw new Error(`sagamesh (${variant.id}) not listening:\n${readTail(child.logFile)}`);
    await sleep(50);
  }
}

export function sagameshSystem(
  id: string,
  label: string,
  ingressPort: number,
  proc: SagameshProcess,
  shapeOverride?: 'serial',
): System {
  const targets = (spec: SagaSpec): (() => Target) => {
    const shape = shapeOverride ?? spec.shape;
    const url = `http://127.0.0.1:${ingressPort}${sagaPath(spec.topology, shape)}`;
    const ok: Target = {
      method: 'POST',
      url,
      body: JSON.stringify(sagaRequest(spec.topology, spec.latencyMs)),
      headers: { 'content-type': 'application/json' },
    };
    const failing: Target = { ...ok, body: JSON.stringify(sagaRequest(spec.topology, spec.latencyMs, true)) };
    let i = 0;
    return () => (failsAt(i++, spec.failEvery) ? failing : ok);
  };
  return {
    id,
    label,
    available: proc.child !== undefined,
    ...(proc.refused ? { unavailable: `not available yet: ${proc.refused}` } : {}),
    ...(proc.child ? { pid: proc.child.pid } : {}),
    targets,
  };
}
