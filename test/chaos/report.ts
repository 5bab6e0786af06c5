import { signatureOf, tallySignatures } from './diagnose';
import type { ClientRecord, ParticipantEvent, ProcessFaultKind, Violation } from './model';
import { PROCESS_FAULT_KINDS } from './model';
import { quantile } from './recovery';
import type { RoundResult } from './round';

/**
 * How a chaos run reads: a violation with everything needed to understand it (the seed, the saga,
 * the participants' events, the client's attempts and the saga log, in order), and the figures
 * docs/reliability.md quotes.
 */
const MAX_DETAILED = 20;

const time = (at: number, origin: number): string =>
  `${at >= origin ? '+' : '-'}${(Math.abs(at - origin) / 1000).toFixed(3)}s`;

function participantLine(e: ParticipantEvent, origin: number): string {
  const where = `${time(e.at, origin)} ${e.host.padEnd(6)}`;
  switch (e.type) {
    case 'call':
      return `${where} ${e.kind} ${e.method} ${e.path} step=${e.step ?? '-'} n=${e.n} fault=${e.fault} → ${e.status || 'dropped'}${e.callerGone ? ' (caller gone)' : ''}`;
    case 'committed':
      return `${where} COMMITTED (pivot upstream)`;
    default:
      return `${where} ${e.type.toUpperCase()} step=${e.step ?? '-'} key=${e.key}`;
  }
}

function clientLines(c: ClientRecord, origin: number): string[] {
  return c.attempts.map(
    (a, i) =>
      `${time(a.startedAt, origin)}…${time(a.endedAt, origin)} attempt ${i + 1}${a.afterFinal ? ' (after final)' : ''}: ` +
      (a.status === undefined
        ? `error ${a.error ?? ''}`
        : `${a.status}${a.replayed ? ' replayed' : ''} ${a.body?.slice(0, 300) ?? ''}`) +
      (i === c.finalAttempt ? '  ← final' : ''),
  );
}

function logLine(r: Record<string, unknown>, origin: number): string {
  const at = typeof r['at'] === 'number' ? time(r['at'], origin) : '?';
  const rest = Object.entries(r)
    .filter(([k]) => !['sagaId', 'at', 'seq', 'type', 'request', 'response'].includes(k))
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  return `${at} ${String(r['type'])} ${rest}`;
}

export function describeViolation(v: Violation, round: RoundResult, seed: number): string {
  const events = round.events.filter(
    (e) => (v.sagaId !== undefined && e.sagaId === v.sagaId) || (v.ref !== undefined && e.ref === v.ref),
  );
  const client = round.clients.find((c) => c.ref === (v.ref ?? events.find((e) => e.ref)?.ref));
  const log = v.sagaId ? round.logs.get(v.sagaId) : undefined;
  const origin = Math.min(
    events[0]?.at ?? Infinity,
    client?.attempts[0]?.startedAt ?? Infinity,
    typeof log?.history[0]?.['at'] === 'number' ? log.history[0]['at'] : Infinity,
  );
  const lines = [
    `VIOLATION of invariant ${v.invariant} (${v.kind}) — seed ${seed}, store ${round.plan.store}` +
      `${v.sagaId ? `, saga ${v.sagaId}` : ''}${v.ref ? `, request ${v.ref}` : ''}`,
    `  ${v.message}`,
    `  signature: ${signatureOf(v, log)}`,
  ];
  if (client) {
    const plan = round.plan.requests.find((r) => r.ref === client.ref);
    lines.push(
      `  request: ${client.definition} key=${client.key ?? '(none)'} body=${JSON.stringify(plan?.body)}`,
    );
    lines.push('  client:', ...clientLines(client, origin).map((l) => `    ${l}`));
  }
  if (events.length > 0)
    lines.push('  participants:', ...events.map((e) => `    ${participantLine(e, origin)}`));
  if (log) lines.push('  saga log:', ...log.history.map((r) => `    ${logLine(r, origin)}`));
  const times = [
    ...events.map((e) => e.at),
    ...(client?.attempts.filter((a) => !a.afterFinal).flatMap((a) => [a.startedAt, a.endedAt]) ?? []),
  ];
  const from = Math.min(...times) - 5000;
  const to = Math.max(...times) + 5000;
  const faults = round.faults.filter((f) => f.killedAt >= from && f.killedAt <= to);
  for (const f of faults)
    lines.push(
      `  fault: ${f.plan.kind} #${f.plan.instance} (${f.trigger}) at ${time(f.killedAt, origin)}, back at ${time(f.readyAt, origin)}`,
    );
  return lines.join('\n');
}

export function describeViolations(round: RoundResult, seed: number): string[] {
  const { violations } = round.check;
  const out = violations.slice(0, MAX_DETAILED).map((v) => describeViolation(v, round, seed));
  if (violations.length > MAX_DETAILED) out.push(`… and ${violations.length - MAX_DETAILED} more violations`);
  return out;
}

export interface KindFigures {
  readonly count: number;
  readonly interrupted: number;
  readonly settledP50Ms: number;
  readonly settledP99Ms: number;
  readonly readyP50Ms: number;
  readonly readyP99Ms: number;
  readonly clientErrors: number;
  readonly byMoment: Readonly<Record<string, number>>;
}

export interface RunFigures {
  readonly seed: number;
  readonly quick: boolean;
  readonly sagas: number;
  readonly outcomes: Readonly<Record<string, number>>;
  readonly verdicts: Readonly<Record<string, number>>;
  readonly participantFaults: Readonly<Record<string, number>>;
  readonly processFaults: Readonly<Record<ProcessFaultKind, KindFigures>>;
  readonly settledP50Ms: number;
  readonly settledP99Ms: number;
  readonly clientErrorsDuringFaults: number;
  readonly violations: number;
  /** Pivot sagas a process fault left in doubt (the upstream committed, the saga compensated). */
  readonly pivotInDoubt: number;
  readonly violationsByKind: Readonly<Record<string, number>>;
  /** Violating sagas by the known cause their log shows (diagnose.ts). */
  readonly violationsBySignature: Readonly<Record<string, number>>;
  readonly durationMs: number;
}

function add(into: Record<string, number>, from: Readonly<Record<string, number>>): void {
  for (const [k, n] of Object.entries(from)) into[k] = (into[k] ?? 0) + n;
}

export function figures(
  rounds: readonly RoundResult[],
  seed: number,
  quick: boolean,
  durationMs: number,
): RunFigures {
  const outcomes: Record<string, number> = {};
  const verdicts: Record<string, number> = {};
  const participantFaults: Record<string, number> = {};
  const violationsByKind: Record<string, number> = {};
  const violationsBySignature: Record<string, number> = {};
  for (const r of rounds) {
    add(violationsBySignature, tallySignatures(r.check.violations, r.logs));
    add(outcomes, r.check.outcomes);
    add(verdicts, r.check.verdicts);
    add(participantFaults, r.participantFaults);
    for (const v of r.check.violations)
      violationsByKind[`${v.invariant}:${v.kind}`] = (violationsByKind[`${v.invariant}:${v.kind}`] ?? 0) + 1;
  }
  const recovery = rounds.flatMap((r) => r.recovery);
  const processFaults = Object.fromEntries(
    PROCESS_FAULT_KINDS.map((kind) => {
      const of = recovery.filter((x) => x.fault.plan.kind === kind);
      const byMoment: Record<string, number> = {};
      for (const x of of) byMoment[x.fault.plan.moment] = (byMoment[x.fault.plan.moment] ?? 0) + 1;
      const settled = of.map((x) => x.settledMs);
      const ready = of.map((x) => x.fault.readyAt - x.fault.startedAt);
      const k: KindFigures = {
        count: of.length,
        interrupted: of.reduce((n, x) => n + x.interrupted, 0),
        settledP50Ms: quantile(settled, 0.5),
        settledP99Ms: quantile(settled, 0.99),
        readyP50Ms: quantile(ready, 0.5),
        readyP99Ms: quantile(ready, 0.99),
        clientErrors: of.reduce((n, x) => n + x.clientErrors, 0),
        byMoment,
      };
      return [kind, k];
    }),
  ) as Record<ProcessFaultKind, KindFigures>;
  const settled = recovery.map((x) => x.settledMs);
  return {
    seed,
    quick,
    sagas: rounds.reduce((n, r) => n + r.plan.requests.length, 0),
    outcomes,
    verdicts,
    participantFaults,
    processFaults,
    settledP50Ms: quantile(settled, 0.5),
    settledP99Ms: quantile(settled, 0.99),
    clientErrorsDuringFaults: recovery.reduce((n, x) => n + x.clientErrors, 0),
    violations: rounds.reduce((n, r) => n + r.check.violations.length, 0),
    pivotInDoubt: rounds.reduce((n, r) => n + new Set(r.check.pivotInDoubt.map((d) => d.sagaId)).size, 0),
    violationsByKind,
    violationsBySignature,
    durationMs,
  };
}

export function figureLines(f: RunFigures): string[] {
  const faults = PROCESS_FAULT_KINDS.filter((k) => f.processFaults[k].count > 0).map((k) => {
    const x = f.processFaults[k];
    return (
      `  ${k}: ${x.count} (${Object.entries(x.byMoment)
        .map(([m, n]) => `${m} ${n}`)
        .join(', ')}); ` +
      `${x.interrupted} sagas in flight; settled p50 ${x.settledP50Ms} ms, p99 ${x.settledP99Ms} ms; ` +
      `back p50 ${x.readyP50Ms} ms, p99 ${x.readyP99Ms} ms; client errors ${x.clientErrors}`
    );
  });
  const kv = (o: Readonly<Record<string, number>>): string =>
    Object.entries(o)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([k, n]) => `${k} ${n}`)
      .join(', ');
  return [
    `sagas: ${f.sagas} — outcomes ${kv(f.outcomes)}; clients ${kv(f.verdicts)}`,
    `faults injected by participants: ${kv(f.participantFaults)}`,
    'process faults:',
    ...faults,
    `recovery (kill → every saga in flight settled): p50 ${f.settledP50Ms} ms, p99 ${f.settledP99Ms} ms; client errors during faults ${f.clientErrorsDuringFaults}`,
    `violations: ${f.violations}${f.violations > 0 ? ` (${kv(f.violationsByKind)})` : ''}`,
    `pivot sagas in doubt (a process fault while the upstream's answer was on its way; docs/saga-log.md): ${f.pivotInDoubt}`,
    ...(f.violations > 0
      ? [
          'violating sagas by signature:',
          ...Object.entries(f.violationsBySignature).map(([s, n]) => `  ${n} × ${s}`),
        ]
      : []),
  ];
}

/** The one-line summary a run ends with. */
export function summaryLine(f: RunFigures): string {
  const kills = PROCESS_FAULT_KINDS.map((k) => `${k} ${f.processFaults[k].count}`).join(', ');
  return (
    `chaos ${f.quick ? 'quick' : 'long'} seed=${f.seed}: ${f.sagas} sagas, process faults ${kills}, ` +
    `${f.violations} violations, ${f.pivotInDoubt} pivot in doubt, in ${Math.round(f.durationMs / 1000)} s — ${f.violations === 0 ? 'PASS' : 'FAIL'}`
  );
}
