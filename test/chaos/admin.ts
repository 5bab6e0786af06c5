import type { LogStatus } from './model';

/**
 * What a chaos round asks sagamesh's admin API (docs/admin.md), and nothing more: which sagas are
 * not done once the system is quiet (invariant 3), and a saga's log records and times, to print
 * beside a violation and to measure how long a kill's sagas took to settle.
 */
const NOT_DONE = ['running', 'compensating', 'stuck'] as const;

async function getJson(url: string): Promise<unknown> {
  const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  if (res.status === 404) return undefined;
  if (!res.ok) throw new Error(`GET ${url}: ${res.status} ${await res.text()}`);
  return res.json();
}

/** Sagas in a status that is not an all-or-nothing end (at most 1000 of each). */
export async function listNotDone(
  adminUrl: string,
  statuses: readonly string[] = NOT_DONE,
): Promise<LogStatus[]> {
  const out: LogStatus[] = [];
  for (const status of statuses) {
    const body = (await getJson(`${adminUrl}/sagas?status=${status}&limit=1000`)) as
      { sagas: { sagaId: string; definition: string; status: string }[] } | undefined;
    for (const s of body?.sagas ?? [])
      out.push({ sagaId: s.sagaId, definition: s.definition, status: s.status });
  }
  return out;
}

export interface SagaLogView {
  readonly saga: {
    readonly status: string;
    readonly startedAt: number;
    readonly endedAt: number;
    readonly finished: boolean;
  };
  readonly history: readonly Record<string, unknown>[];
}

/** GET /sagas/{id}; undefined when the log does not know it. */
export async function sagaLog(adminUrl: string, sagaId: string): Promise<SagaLogView | undefined> {
  return (await getJson(`${adminUrl}/sagas/${encodeURIComponent(sagaId)}`)) as SagaLogView | undefined;
}
