import type { SagaView } from '../admin/timeline';
import { formatDuration, formatTime } from '../admin/ui/format';
import { ERRORS, SagameshError } from '../errors';
import type { SagaSummary } from '../runtime/journal';
import type { AdminClient } from './admin-client';
import type { CliIo } from './io';

/**
 * `sagamesh list`, `inspect`, `abort`, `retry`: the admin API, printed for people (or as the
 * API's JSON with `--json`). Errors propagate as SagameshErrors with the server's codes.
 */

export interface ListFilters {
  readonly status?: string;
  readonly definition?: string;
  readonly since?: string;
  readonly limit?: string;
}

function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return (
    rows
      .map((r) =>
        r
          .map((cell, i) => cell.padEnd(widths[i] ?? 0))
          .join('  ')
          .trimEnd(),
      )
      .join('\n') + '\n'
  );
}

export async function list(
  client: AdminClient,
  filters: ListFilters,
  json: boolean,
  io: CliIo,
): Promise<number> {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(filters)) if (typeof v === 'string' && v !== '') query.set(k, v);
  const qs = query.toString();
  const answer = await client.get<{ sagas: SagaSummary[] }>(`/sagas${qs ? `?${qs}` : ''}`);
  if (json) {
    io.stdout(`${JSON.stringify(answer, null, 2)}\n`); // the API's answer as it came, as `inspect --json`
    return 0;
  }
  const { sagas } = answer;
  if (sagas.length === 0) {
    io.stdout('no sagas\n');
    return 0;
  }
  io.stdout(
    table([
      ['SAGA', 'DEFINITION', 'STATUS', 'STARTED (UTC)', 'TOOK'],
      ...sagas.map((s) => [
        s.sagaId,
        s.version ? `${s.definition}@${s.version}` : s.definition,
        s.status,
        formatTime(s.startedAt),
        formatDuration(s.updatedAt - s.startedAt),
      ]),
    ]),
  );
  return 0;
}

export async function inspect(
  client: AdminClient,
  sagaId: string,
  json: boolean,
  io: CliIo,
): Promise<number> {
  const answer = await client.get<{ saga: SagaView; history: unknown[]; contents?: string }>(
    `/sagas/${encodeURIComponent(sagaId)}`,
  );
  if (json) {
    io.stdout(`${JSON.stringify(answer, null, 2)}\n`);
    return 0;
  }
  const v = answer.saga;
  const lines = [
    `saga        ${v.sagaId}`,
    `definition  ${v.definition}@${v.version}`,
    `status      ${v.status}`,
    ...(v.request ? [`request     ${v.request.method} ${v.request.path}`] : []),
    ...(v.parent ? [`parent      ${v.parent.sagaId} (step ${v.parent.step})`] : []),
    ...(await childTree(client, v.children, 1)),
    ...(v.deadlineMs !== undefined
      ? [`deadline    ${formatDuration(v.deadlineMs)} (the parent's budget)`]
      : []),
    `started     ${formatTime(v.startedAt)} (UTC)`,
    `${v.finished ? 'took' : 'running for'}${v.finished ? '        ' : ' '}${formatDuration(v.endedAt - v.startedAt)}`,
    ...(v.failedStep ? [`failed step ${v.failedStep}`] : []),
    ...(v.error ? [`error       ${v.error.code}: ${v.error.message}`] : []),
    ...(answer.contents === 'withheld'
      ? ['contents    withheld: the admin protects them (--token or SAGAMESH_ADMIN_TOKEN shows them)']
      : []),
    '',
  ];
  io.stdout(`${lines.join('\n')}\n`);
  const events = [
    ...v.bars.map((b) => ({
      at: b.start,
      rank: b.kind === 'action' && !b.replay ? PHASE.action : PHASE.undo,
      cells: [
        b.step,
        b.replay ? 'replay' : b.kind,
        `#${b.attempt}`,
        b.outcome,
        b.httpStatus !== undefined ? String(b.httpStatus) : '',
        formatDuration(b.end - b.start),
        b.error ? `${b.error.code}: ${b.error.message}` : '',
      ],
    })),
    ...v.marks.map((m) => ({
      at: m.at,
      rank:
        m.label === 'compensating'
          ? PHASE.compensating
          : m.label === 'recovered'
            ? PHASE.recovered
            : PHASE.end,
      cells: [`— ${m.label}`, '', '', '', '', '', ''],
    })),
  ].sort((a, b) => a.at - b.at || a.rank - b.rank);
  io.stdout(
    table([
      ['AT', 'STEP', 'KIND', 'ATTEMPT', 'OUTCOME', 'HTTP', 'TOOK', 'ERROR'],
      ...events.map((e) => [`+${formatDuration(e.at - v.startedAt)}`, ...e.cells]),
    ]),
  );
  return 0;
}

/**
 * Calls and marks of one millisecond in the order they can only have happened: a restart's
 * `recovered` before the calls it resumed, actions before `compensating`, which comes before the
 * compensations and replays it led to, and the final status last.
 */
const PHASE = { recovered: 0, action: 1, compensating: 2, undo: 3, end: 4 } as const;

export async function abort(
  client: AdminClient,
  sagaId: string,
  reason: string | undefined,
  io: CliIo,
): Promise<number> {
  const answer = await client.post<{ status: string }>(
    `/sagas/${encodeURIComponent(sagaId)}/abort`,
    reason ? { reason } : {},
  );
  io.stdout(`${sagaId}: ${answer.status}\n`);
  return 0;
}

export async function retry(client: AdminClient, sagaId: string, io: CliIo): Promise<number> {
  const answer = await client.post<{ status: string }>(`/sagas/${encodeURIComponent(sagaId)}/retry`);
  io.stdout(`${sagaId}: ${answer.status}\n`);
  return 0;
}

/** How deep `inspect` follows child sagas (a tree deeper than this is cut with `…`). */
const MAX_TREE_DEPTH = 8;

/**
 * The child sagas of a saga's steps (nested sagas, docs/nested-sagas.md) as indented lines,
 * followed down as far as this admin API's log holds them; a child in another sagamesh's log is
 * named, to be looked up there.
 */
async function childTree(
  client: AdminClient,
  children: SagaView['children'],
  depth: number,
): Promise<string[]> {
  const lines: string[] = [];
  const indent = `child       ${'  '.repeat(depth - 1)}`;
  for (const c of children) {
    if (depth > MAX_TREE_DEPTH) {
      lines.push(`${indent}…`);
      break;
    }
    let child: SagaView | undefined;
    try {
      child = (await client.get<{ saga: SagaView }>(`/sagas/${encodeURIComponent(c.sagaId)}`)).saga;
    } catch (err) {
      if (!(err instanceof SagameshError) || err.code !== ERRORS.SAGA_NOT_FOUND.code) throw err;
    }
    if (!child) {
      lines.push(`${indent}${c.sagaId} (step ${c.step}; in another sagamesh's log)`);
      continue;
    }
    lines.push(`${indent}${c.sagaId} (step ${c.step}) ${child.definition} ${child.status}`);
    lines.push(...(await childTree(client, child.children ?? [], depth + 1)));
  }
  return lines;
}
