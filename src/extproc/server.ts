import * as grpc from '@grpc/grpc-js';
import fs from 'node:fs';
import net from 'node:net';
import { HealthImplementation } from 'grpc-health-check';
import { ERRORS, SagameshError, toSagameshError } from '../errors';
import type { Logger } from '../logger';
import type { Observer } from '../engine/observer';
import { NOOP_OBSERVER } from '../engine/observer';
import type { ProcessingRequest, ProcessingResponse } from './messages';
import { PhaseOrder, phaseOf } from './phases';
import type { Processor, ProcessorFactory } from './processor';
import { EXT_PROC_SERVICE_NAME, externalProcessorService } from './protos';

/**
 * The ext_proc gRPC server. The stream loop only does plumbing: it hands each message to the
 * stream's Processor in order, writes the answer, treats half-close and cancel as normal ends,
 * and turns a processor error into a gRPC status (Envoy, failing closed, then answers 500).
 */

type ProcessStream = grpc.ServerDuplexStream<ProcessingRequest, ProcessingResponse>;

export interface ExtProcServerOptions {
  readonly processorFactory: ProcessorFactory;
  readonly logger: Logger;
  readonly observer?: Observer;
  /** Largest ext_proc message taken; larger ones end the stream with RESOURCE_EXHAUSTED. */
  readonly maxMessageBytes?: number;
  /** A stream with no message this long after it opened is ended (DEFAULT_FIRST_MESSAGE_MS). */
  readonly firstMessageMs?: number;
}

/**
 * Default of `firstMessageMs`. Envoy sends a stream's request headers as it opens it; a stream
 * that stays silent is not Envoy's, or its client gave up before its first message — and grpc-js
 * tells the server of a cancel that early neither as 'cancelled' nor as an end (20 of 20 streams
 * cancelled as they opened stayed open until shutdown). Without this, such streams pile up.
 */
export const DEFAULT_FIRST_MESSAGE_MS = 10_000;

/** Default of `maxMessageBytes`: a 64 KiB body plus room for headers. */
export const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 + 1024 * 1024;

/** Hands a message to its phase's method, once `order` allows the phase (PROTOCOL otherwise). */
function dispatch(
  processor: Processor,
  order: PhaseOrder,
  message: ProcessingRequest,
): Promise<ProcessingResponse> {
  const phase = phaseOf(message);
  if (!phase) {
    return Promise.reject(
      new SagameshError(ERRORS.PROTOCOL, `message without a phase: ${message.request ?? '?'}`),
    );
  }
  order.check(phase);
  switch (phase) {
    case 'request_headers':
      return processor.requestHeaders(message.request_headers ?? {});
    case 'request_body':
      return processor.requestBody(message.request_body ?? {});
    case 'response_headers':
      return processor.responseHeaders(message.response_headers ?? {});
    case 'response_body':
      return processor.responseBody(message.response_body ?? {});
    case 'request_trailers':
      return Promise.resolve({ request_trailers: {} });
    case 'response_trailers':
      return Promise.resolve({ response_trailers: {} });
  }
}

export class ExtProcServer {
  private readonly server: grpc.Server;
  private readonly health = new HealthImplementation({
    '': 'NOT_SERVING',
    [EXT_PROC_SERVICE_NAME]: 'NOT_SERVING',
  });
  private readonly streams = new Set<ProcessStream>();
  private streamCount = 0;

  constructor(private readonly options: ExtProcServerOptions) {
    this.server = new grpc.Server({
      'grpc.keepalive_permit_without_calls': 1,
      'grpc.max_receive_message_length': options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
    });
    this.server.addService(externalProcessorService(), {
      Process: (stream: ProcessStream) => this.process(stream),
    });
    this.health.addToServer(this.server);
  }

  /**
   * Binds `host:port` or `unix:/path`; resolves the bound port (0 for unix sockets). A unix socket
   * left behind by a crashed sagamesh is removed first (one that answers is another process's:
   * binding fails), and the new one is made group-writable (0660): who can write it can connect.
   */
  async listen(address: string): Promise<number> {
    const socketPath = address.startsWith('unix:') ? address.slice('unix:'.length) : undefined;
    if (socketPath !== undefined) await removeStaleSocket(socketPath);
    const port = await new Promise<number>((resolve, reject) => {
      this.server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, bound) =>
        err ? reject(err) : resolve(bound),
      );
    });
    if (socketPath !== undefined) await fs.promises.chmod(socketPath, 0o660);
    this.setServing(true);
    return port;
  }

  setServing(serving: boolean): void {
    const status = serving ? 'SERVING' : 'NOT_SERVING';
    this.health.setStatus('', status);
    this.health.setStatus(EXT_PROC_SERVICE_NAME, status);
  }

  get activeStreams(): number {
    return this.streams.size;
  }

  /** Stops accepting streams, waits for open ones up to `graceMs`, then cancels the rest. */
  async stop(graceMs = 5000): Promise<void> {
    this.setServing(false);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, graceMs);
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private process(stream: ProcessStream): void {
    const streamId = ++this.streamCount;
    const logger = this.options.logger.child({ stream: streamId });
    const processor = this.options.processorFactory({ logger });
    const order = new PhaseOrder();
    this.streams.add(stream);
    let chain: Promise<void> = Promise.resolve();
    let closed = false;

    const observer = this.options.observer ?? NOOP_OBSERVER;
    observer.streamOpened();
    const close = (reason: 'ended' | 'cancelled', failed = false): void => {
      if (closed) return;
      closed = true;
      clearTimeout(silent);
      this.streams.delete(stream);
      observer.streamClosed(failed ? 'error' : reason);
      processor.close(reason);
    };

    const silent = setTimeout(() => {
      if (closed) return;
      const e = new SagameshError(ERRORS.PROTOCOL, 'no message since the stream opened');
      logger.info({ code: e.code }, 'ext_proc stream ended: no message');
      if (!stream.cancelled && !stream.destroyed) {
        stream.emit('error', { code: grpc.status.DEADLINE_EXCEEDED, details: `${e.code}: ${e.message}` });
      }
      close('cancelled');
    }, this.options.firstMessageMs ?? DEFAULT_FIRST_MESSAGE_MS);
    silent.unref();

    stream.on('data', (message: ProcessingRequest) => {
      clearTimeout(silent);
      chain = chain.then(async () => {
        if (closed) return;
        try {
          const response = await dispatch(processor, order, message);
          if (!closed && !stream.cancelled) stream.write(response);
        } catch (err) {
          const e = toSagameshError(err);
          logger.error({ err: e, code: e.code }, 'ext_proc processing failed');
          if (!closed && !stream.cancelled) {
            stream.emit('error', { code: e.spec.grpcStatus, details: `${e.code}: ${e.message}` });
          }
          close('ended', true);
        }
      });
    });
    stream.on('end', () => {
      // Envoy's half-close. With ext_proc_graceful_grpc_close (envoy/envoy.yaml) Envoy then waits
      // up to 1 s for this end of the call (status OK) instead of resetting the stream; a reset
      // per stream made Node's HTTP/2 server answer with GOAWAYs (bench/notes.md, finding 4).
      void chain.then(() => {
        // A client cancel also ends the readable side; report it as what it was.
        if (stream.cancelled) return close('cancelled');
        if (!stream.destroyed) stream.end();
        close('ended');
      });
    });
    stream.on('cancelled', () => close('cancelled'));
    stream.on('error', (err) => {
      // Envoy resets side streams when requests end; that is not a failure of ours.
      logger.debug({ err }, 'ext_proc stream error');
      close('cancelled');
    });
  }
}

/**
 * Removes a unix socket file nobody listens on (what a killed sagamesh leaves behind, which would
 * make the next bind fail with EADDRINUSE). A socket that accepts a connection is left alone.
 */
async function removeStaleSocket(socketPath: string): Promise<void> {
  let stat: fs.Stats;
  try {
    stat = await fs.promises.lstat(socketPath);
  } catch {
    return; // nothing there
  }
  if (!stat.isSocket()) return; // not ours to remove: the bind reports it
  const live = await new Promise<boolean>((resolve) => {
    const probe = net.connect(socketPath);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (!live) await fs.promises.unlink(socketPath);
}
