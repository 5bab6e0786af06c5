/**
 * The chaos run's shared vocabulary (a leaf module: it imports nothing of the suite): what a plan
 * is made of, what the participants record and what the clients received — the checker's input.
 */

/** The participant clusters of envoy/envoy.yaml: the chaos participants listen on their ports. */
export const HOSTS = ['hotel', 'flight', 'car', 'trips'] as const;
export type Host = (typeof HOSTS)[number];

/**
 * What a participant does on the n-th call it gets for one idempotency key (the plan gives each
 * step a script, one entry per call; calls past the script are `ok`):
 * - `ok`: applies the effect (once per key) and answers 201 (a replay: 200, the same effect);
 * - `5xx`: answers 503 and does nothing;
 * - `refuse`: answers 409 and never applies this key (a refusal sticks to its key);
 * - `drop`: applies, then closes the connection without an answer;
 * - `garbage`: applies, then answers 201 with a body that is not JSON;
 * - `slow:<ms>`: applies after `ms`, whether or not the caller is still waiting (past the step's
 *   timeout: the answer comes after the caller gave up).
 * A compensation script uses the same words (`refuse` excepted); an undo is applied once per effect.
 */
export type CallFault = 'ok' | '5xx' | 'refuse' | 'drop' | 'garbage' | `slow:${number}`;
export const CALL_FAULT_KINDS = ['5xx', 'refuse', 'drop', 'garbage', 'slow'] as const;
export type CallFaultKind = (typeof CALL_FAULT_KINDS)[number];

/** The pivot upstream (respond: upstream): commit (201), refuse (409), fail (500), or commit after a delay. */
export type UpstreamFault = 'commit' | 'refuse' | 'fail' | `slow:${number}`;

/** How a step's compensation finds what to undo. */
export type UndoStyle =
  /** `DELETE /effects/${steps.<s>.response.body.id}`: needs the action's answer (in-doubt replay). */
  | 'by-id'
  /** `DELETE /sagas/${saga.id}/steps/<s>`: the participant derives the action's idempotency key. */
  | 'by-key';

export interface StepModel {
  readonly name: string;
  readonly host: Host;
  readonly dependsOn: readonly string[];
  readonly timeoutMs: number;
  readonly attempts: number;
  readonly undo: UndoStyle;
  readonly undoTimeoutMs: number;
  readonly undoAttempts: number;
}

export interface DefinitionModel {
  readonly name: string;
  /** `POST <path>` starts it. */
  readonly path: string;
  readonly respond: 'aggregate' | 'upstream';
  readonly deadlineMs: number;
  readonly failureStatus: number;
  readonly steps: readonly StepModel[];
  /** The YAML file sagamesh loads. */
  readonly yaml: string;
}

/** One logical client request (the same across its retries). */
export interface RequestPlan {
  readonly index: number;
  /** Unique per request: carried to every participant call (`x-chaos-ref`). */
  readonly ref: string;
  readonly definition: string;
  readonly path: string;
  /** The client's Idempotency-Key; without one the client sends once and never retries. */
  readonly key?: string;
  readonly body: ChaosRequestBody;
  /** After its final answer, the client sends the request once more (it must get the same answer). */
  readonly resendAfterFinal: boolean;
}

export interface ChaosRequestBody {
  readonly ref: string;
  /** Per step: the action's (`a`) and the compensation's (`u`) fault scripts; absent = all `ok`. */
  readonly f: Readonly<
    Record<string, { readonly a?: readonly CallFault[]; readonly u?: readonly CallFault[] }>
  >;
  readonly upstream?: UpstreamFault;
}

export const PROCESS_FAULT_KINDS = ['sagamesh-kill', 'envoy-kill', 'postgres-restart'] as const;
export type ProcessFaultKind = (typeof PROCESS_FAULT_KINDS)[number];
/** When a planned fault strikes once its request count is reached. */
export type FaultMoment = 'timed' | 'mid-action' | 'mid-compensation';

export interface ProcessFaultPlan {
  /** Strikes once this many requests were sent. */
  readonly afterRequest: number;
  readonly kind: ProcessFaultKind;
  readonly moment: FaultMoment;
  /** `timed`: how long after `afterRequest`. */
  readonly delayMs: number;
  /** How long the process stays down before it is started again. */
  readonly downMs: number;
  /** Which sagamesh instance (with two on PostgreSQL). */
  readonly instance: number;
}

export type StoreKind = 'sqlite' | 'postgres';

export interface RoundPlan {
  readonly store: StoreKind;
  readonly instances: number;
  readonly concurrency: number;
  readonly definitions: readonly DefinitionModel[];
  readonly requests: readonly RequestPlan[];
  readonly faults: readonly ProcessFaultPlan[];
}

// --- what the participants record ------------------------------------------------------------

interface EventBase {
  /** Order of recording across all participants of the run. */
  readonly seq: number;
  /** Epoch ms. */
  readonly at: number;
  readonly host: Host;
  readonly sagaId?: string;
  readonly step?: string;
  readonly definition?: string;
  readonly ref?: string;
}

/** A request a participant received, and what it did with it. */
export interface CallEvent extends EventBase {
  readonly type: 'call';
  readonly kind: 'action' | 'compensation' | 'upstream';
  readonly method: string;
  readonly path: string;
  readonly key?: string;
  /** The n-th call for this key and kind, from 0. */
  readonly n: number;
  readonly fault: string;
  /** The status answered; 0 when the connection was dropped on purpose. */
  readonly status: number;
  /** The caller was gone before the answer was written. */
  readonly callerGone: boolean;
}

/** The effect of an action: applied once per idempotency key. */
export interface AppliedEvent extends EventBase {
  readonly type: 'applied';
  readonly key: string;
  readonly effectId: string;
}

export interface UndoneEvent extends EventBase {
  readonly type: 'undone';
  readonly key: string;
  readonly effectId: string;
}

/** An undo by key arrived before the effect: the key may never be applied now. */
export interface TombstonedEvent extends EventBase {
  readonly type: 'tombstoned';
  readonly key: string;
}

/** A slow action came to its end after its key was undone: not applied. */
export interface SuppressedEvent extends EventBase {
  readonly type: 'suppressed';
  readonly key: string;
}

/** The pivot upstream committed the saga's request (`at`), received at `receivedAt`. */
export interface CommittedEvent extends EventBase {
  readonly type: 'committed';
  readonly receivedAt?: number;
}

export type ParticipantEvent =
  CallEvent | AppliedEvent | UndoneEvent | TombstonedEvent | SuppressedEvent | CommittedEvent;

// --- what the clients received ---------------------------------------------------------------

export interface Attempt {
  readonly startedAt: number;
  readonly endedAt: number;
  /** Absent on a network error. */
  readonly status?: number;
  readonly error?: string;
  readonly body?: string;
  readonly sagaId?: string;
  /** The answer came from the Idempotency-Key's record (`idempotent-replayed: true`). */
  readonly replayed?: boolean;
  /** Sent after the final answer (a client's resend, or the check's late replay once quiet). */
  readonly afterFinal?: boolean;
}

/** What a client concluded: all applied, all undone, or nothing final. */
export type Verdict = 'applied' | 'undone' | 'stuck' | 'unknown';

export interface ClientRecord {
  readonly ref: string;
  readonly definition: string;
  readonly key?: string;
  readonly attempts: readonly Attempt[];
  readonly verdict: Verdict;
  /** Index into `attempts` of the answer the verdict comes from. */
  readonly finalAttempt?: number;
  /** An answer no saga request should get (e.g. 422 for a key reused with the same body). */
  readonly unexpected?: string;
}

// --- what the run observed of its processes --------------------------------------------------

export interface ExitEvent {
  readonly process: string;
  readonly at: number;
  readonly code: number | null;
  readonly signal?: string | null;
  readonly tail: string;
}

/** A saga the log still shows as not done once the system was quiet (GET /sagas?status=…). */
export interface LogStatus {
  readonly sagaId: string;
  readonly definition: string;
  readonly status: string;
}

/** When a process fault struck and when the process was back (faults.ts FaultRecord, in short). */
export interface StruckFault {
  readonly kind: ProcessFaultKind;
  readonly killedAt: number;
  readonly readyAt: number;
}

export interface Violation {
  /** ARCHITECTURE.md §5: 1 all-or-nothing, 2 applied once, 3 terminal, 4 answers, 5 exits. */
  readonly invariant: 1 | 2 | 3 | 4 | 5;
  readonly kind: string;
  readonly message: string;
  readonly sagaId?: string;
  readonly ref?: string;
}
