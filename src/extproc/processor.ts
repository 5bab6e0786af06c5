import type { Logger } from '../logger';
import type { HttpBody, HttpHeaders, ProcessingResponse } from './messages';

/**
 * The seam between the ext_proc stream plumbing (server.ts) and the work. One Processor per
 * stream, i.e. per HTTP request; one method per phase Envoy may send. The server calls them in
 * stream order, one at a time, and writes what they return.
 */
export interface Processor {
  requestHeaders(headers: HttpHeaders): Promise<ProcessingResponse>;
  requestBody(body: HttpBody): Promise<ProcessingResponse>;
  responseHeaders(headers: HttpHeaders): Promise<ProcessingResponse>;
  responseBody(body: HttpBody): Promise<ProcessingResponse>;
  /**
   * The stream is over: Envoy half-closed it or cancelled it (the client went away or the request
   * finished). Both are normal ends. Work the processor started on its own may go on.
   */
  close(reason: 'ended' | 'cancelled'): void;
}

export interface StreamContext {
  readonly logger: Logger;
}

export type ProcessorFactory = (context: StreamContext) => Processor;

export const CONTINUE = { status: 'CONTINUE' as const };

/** Lets everything through unchanged: the default for every phase. */
export class PassThroughProcessor implements Processor {
  requestHeaders(_headers: HttpHeaders): Promise<ProcessingResponse> {
    return Promise.resolve({ request_headers: { response: CONTINUE } });
  }
  requestBody(_body: HttpBody): Promise<ProcessingResponse> {
    return Promise.resolve({ request_body: { response: CONTINUE } });
  }
  responseHeaders(_headers: HttpHeaders): Promise<ProcessingResponse> {
    return Promise.resolve({ response_headers: { response: CONTINUE } });
  }
  responseBody(_body: HttpBody): Promise<ProcessingResponse> {
    return Promise.resolve({ response_body: { response: CONTINUE } });
  }
  close(_reason: 'ended' | 'cancelled'): void {}
}
