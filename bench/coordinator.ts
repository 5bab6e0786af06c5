import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import pino from 'pino';
import { systemClock } from '../src/clock';
import type { HttpCaller, StepHttpRequest } from '../src/engine/http-caller';
import type { StepResponse } from '../src/definition/definition';
import { loadDefinitionText } from '../src/definition/loader';
import { SagaRunner } from '../src/engine/runner';
import { MemorySagaLog } from '../src/saga-log/memory';
import { REPO_ROOT } from './layout';

/**
 * The coordinator alone: SagaRunner with the in-memory log and an HTTP caller that answers at
 * once, no Envoy, no gRPC, no network. What one saga costs sagamesh's own CPU — the figure the
 * machine and the runner are tuned against (`npm run bench:coordinator`).
 */
class InstantHttp implements HttpCaller {
  private n = 0;
  call(request: StepHttpRequest): Promise<StepResponse> {
    const body = request.method === 'POST' ? { id: `b${++this.n}` } : {};
    return Promise.resolve({ status: request.method === 'POST' ? 201 : 200, headers: {}, body });
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** A runner on the in-memory log for the bench saga `name`, its definition and a request for it. */
function benchRunner(name: string, http: HttpCaller) {
  const file = path.join(REPO_ROOT, 'bench', 'sagas', `${name}.yaml`);
  const { definition, problems } = loadDefinitionText(file, fs.readFileSync(file, 'utf8'));
  if (!definition) throw new Error(`${file}: ${JSON.stringify(problems)}`);
  const clock = systemClock;
  const runner = new SagaRunner({
    log: new MemorySagaLog(clock),
    http,
    clock,
    logger: pino({ level: 'silent' }),
    resolveDefinition: () => Promise.resolve(definition),
  });
  const body = Object.fromEntries(definition.steps.map((s) => [s.name, { ms: 0 }]));
  const request = { method: 'POST', path: '/bench', query: {}, headers: {}, body };
  return { runner, definition, request };
}

async function measure(name: string, sagas: number, concurrency: number): Promise<void> {
  const { runner, definition, request } = benchRunner(name, new InstantHttp());
  let started = 0;
  let failed = 0;
  const worker = async (): Promise<void> => {
    while (started < sagas) {
      started++;
      const result = await (await runner.start(definition, request)).settled;
      if (result.status !== 'succeeded') failed++;
    }
  };
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const cpuUs = (cpu.user + cpu.system) / sagas;
  const heapMb = process.memoryUsage().heapUsed / 2 ** 20;
  console.log(
    `${name.padEnd(12)} ${sagas} sagas, ${concurrency} at once: ${(sagas / seconds).toFixed(0)} sagas/s, ` +
      `${cpuUs.toFixed(0)} µs CPU per saga, heap ${heapMb.toFixed(0)} MB${failed ? `, ${failed} FAILED` : ''}`,
  );
}

/** Never answers: every call stays in flight until the saga is dropped. */
class SilentHttp implements HttpCaller {
  call(): Promise<StepResponse> {
    return new Promise(() => undefined);
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * Heap per waiting saga (`node --expose-gc dist/bench/coordinator.js waiting [sagas]`): this many
 * 1to4 sagas started, every call in flight and never answered, the heap after two collections
 * against the heap before, per saga. What 10,000 sagas in flight cost in the runner's own heap.
 */
async function waiting(sagas: number): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with node --expose-gc');
  const { runner, definition, request } = benchRunner('flat-1to4', new SilentHttp());
  gc();
  gc();
  const before = process.memoryUsage().heapUsed;
  const executions = [];
  for (let i = 0; i < sagas; i++) executions.push(await runner.start(definition, request));
  await new Promise((resolve) => setTimeout(resolve, 200)); // every call dispatched
  gc();
  gc();
  const perSaga = (process.memoryUsage().heapUsed - before) / sagas;
  console.log(
    `flat-1to4 ${sagas} sagas waiting (${runner.inFlight} in flight): ${(perSaga / 1024).toFixed(1)} KB of heap per saga`,
  );
  process.exit(executions.length > 0 ? 0 : 1);
}

async function main(): Promise<void> {
  if (process.argv[2] === 'waiting') return waiting(Number(process.argv[3] ?? 10_000));
  const sagas = Number(process.argv[2] ?? 20000);
  const concurrency = Number(process.argv[3] ?? 64);
  const names = process.argv[4]?.split(',') ?? ['flat-1to4', 'flat-1to9', 'serial-1to9'];
  for (const name of names) {
    await measure(name, Math.ceil(sagas / 10), concurrency); // warm-up
    await measure(name, sagas, concurrency);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
