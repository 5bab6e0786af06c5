import type { StepResponse } from '../definition/definition';

/**
 * The engine's port to the participants: one step or compensation request out, the participant's
 * answer back. The adapters in src/participants/ implement it (HTTP/1.1 pool, h2c).
 */
export interface StepHttpRequest {
  readonly method: string;
  /** `http://hotel` — sent as the Host header. */
  readonly origin: string;
  /** Path and query, already percent-encoded. */
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  /** A JSON value; undefined sends no body. */
  readonly body?: unknown;
  /** Cancelled when the call is no longer wanted: the caller then stops it and rejects. */
  readonly cancellation: CallCancellation;
}

/**
 * How a call learns that it is no longer wanted (its state was left: a timeout, a failure
 * elsewhere, the deadline, a stopped saga). Not an AbortSignal: an AbortController with its signal
 * and one listener cost ~950 bytes of heap and ~6.6 µs of CPU per call (an EventTarget each), and
 * every call of every waiting saga holds one (bench/notes.md §5). A call has one listener: the
 * caller that sends it.
 */
export class CallCancellation {
  private listener: (() => void) | undefined;
  private done = false;

  get cancelled(): boolean {
    return this.done;
  }

  /** What cancelling does (replaces the one before; undefined clears it). Not run when already cancelled. */
  onCancel(listener: (() => void) | undefined): void {
    this.listener = listener;
  }

  cancel(): void {
    if (this.done) return;
    this.done = true;
    const listener = this.listener;
    this.listener = undefined;
    listener?.();
  }
}

/** What a cancelled call rejects with. */
export function callCancelled(): CallNetworkError {
  return new CallNetworkError('the call was cancelled', undefined);
}

/** A participant's answer as the caller read it. */
export interface CallResponse extends StepResponse {
  /**
   * Set when the body claims JSON (`content-type`) but is not JSON sagamesh can read — invalid, or
   * nested deeper than the limit: why. `body` is then the raw text. Never stored: the outcome
   * rules (engine/outcome.ts) decide what such an answer means.
   */
  readonly unreadable?: string;
}

export interface HttpCaller {
  call(request: StepHttpRequest): Promise<CallResponse>;
  close(): Promise<void>;
}

/** Network failures carry the system error code so the classifier can tell "never sent" apart. */
export class CallNetworkError extends Error {
  constructor(
    message: string,
    readonly errno: string | undefined,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'CallNetworkError';
  }
}

/** A participant's answer larger than the caller reads: a network failure (the step may have run). */
export function responseTooLarge(bytes: number, maxBytes: number): CallNetworkError {
  return new CallNetworkError(`response body of ${bytes} bytes exceeds ${maxBytes}`, 'ERESPONSETOOLARGE');
}
