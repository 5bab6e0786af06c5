/**
 * Qbox's flat topologies: one coordinator, N participants p1…pN. "flat" runs every step at once;
 * "serial" forces the same steps into a chain (p2 after p1, …), as Qbox ran them.
 *
 * A saga request is the same JSON for every system: one payload per participant,
 * `{ "p1": { "ms": 20 }, …, "pN": { "ms": 20, "fail": true } }` — `ms` is how long the participant
 * takes to answer, `fail` makes it refuse (409), which is how the failure mix fails the last step.
 */
export type TopologyName = '1to4' | '1to9';
export type Shape = 'flat' | 'serial';

export interface Topology {
  readonly name: TopologyName;
  readonly participants: readonly string[];
}

export const TOPOLOGIES: Readonly<Record<TopologyName, Topology>> = Object.freeze({
  '1to4': { name: '1to4', participants: participantNames(4) },
  '1to9': { name: '1to9', participants: participantNames(9) },
});

/** Every participant any topology uses: p1…p9. */
export const ALL_PARTICIPANTS: readonly string[] = participantNames(9);

function participantNames(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `p${i + 1}`);
}

export interface ParticipantPayload {
  readonly ms: number;
  readonly fail?: boolean;
}

export type SagaRequest = Readonly<Record<string, ParticipantPayload>>;

/** The request body for one saga; `failLast` makes the last participant refuse its step. */
export function sagaRequest(topology: Topology, latencyMs: number, failLast = false): SagaRequest {
  const body: Record<string, ParticipantPayload> = {};
  const last = topology.participants.length - 1;
  topology.participants.forEach((name, i) => {
    body[name] = failLast && i === last ? { ms: latencyMs, fail: true } : { ms: latencyMs };
  });
  return body;
}

/** The path sagamesh matches (bench/sagas/<shape>-<topology>.yaml). */
export function sagaPath(topology: Topology, shape: Shape): string {
  return `/bench/${shape}-${topology.name}`;
}
