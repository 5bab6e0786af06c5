import { ERRORS, SagameshError } from '../errors';
import type { Phase, ProcessingRequest } from './messages';

/**
 * The order of an ext_proc stream's messages, as Envoy sends them: request headers, body, trailers,
 * then response headers, body, trailers. Headers and trailers come at most once; a body phase may
 * repeat (streamed bodies). Anything else is not Envoy (a raw client on the gRPC port, or a bug):
 * e.g. a second `request_headers` with end_of_stream would otherwise start a second saga on the
 * same stream. A violation is SagameshError(PROTOCOL), which ends the stream.
 */
const ORDER: Readonly<Record<Phase, number>> = {
  request_headers: 0,
  request_body: 1,
  request_trailers: 2,
  response_headers: 3,
  response_body: 4,
  response_trailers: 5,
};
const ONCE: ReadonlySet<Phase> = new Set([
  'request_headers',
  'request_trailers',
  'response_headers',
  'response_trailers',
]);

/** The phase a message carries, or undefined when it carries none. */
export function phaseOf(message: ProcessingRequest): Phase | undefined {
  return (Object.keys(ORDER) as Phase[]).find(
    (phase) => message[phase] !== undefined && message[phase] !== null,
  );
}

export class PhaseOrder {
  private last: Phase | undefined;

  /** Throws SagameshError(PROTOCOL) when `phase` may not follow the messages seen so far. */
  check(phase: Phase): void {
    const last = this.last;
    if (last !== undefined && (ORDER[phase] < ORDER[last] || (phase === last && ONCE.has(phase)))) {
      throw new SagameshError(ERRORS.PROTOCOL, `${phase} after ${last}`);
    }
    this.last = phase;
  }
}
