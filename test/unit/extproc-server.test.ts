import * as grpc from '@grpc/grpc-js';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { service as healthService } from 'grpc-health-check';
import pino from 'pino';
import { ERRORS, SagameshError } from '../../src/errors';
import type { ProcessingRequest, ProcessingResponse } from '../../src/extproc/messages';
import type { Processor } from '../../src/extproc/processor';
import { PassThroughProcessor } from '../../src/extproc/processor';
import { externalProcessorService } from '../../src/extproc/protos';
import { ExtProcServer } from '../../src/extproc/server';

/**
 * The stream plumbing with a real gRPC client in Envoy's place (the integration tests use Envoy
 * itself): order, normal ends, errors as statuses, and the standard health service.
 */
const Client = grpc.makeGenericClientConstructor(externalProcessorService(), 'ExternalProcessor');
const HealthClient = grpc.makeGenericClientConstructor(healthService, 'Health');

async function serve(
  processor: () => Processor,
  opts: { address?: string; maxMessageBytes?: number; firstMessageMs?: number } = {},
) {
  const closes: string[] = [];
  const server = new ExtProcServer({
    logger: pino({ level: 'silent' }),
    ...(opts.maxMessageBytes !== undefined ? { maxMessageBytes: opts.maxMessageBytes } : {}),
    ...(opts.firstMessageMs !== undefined ? { firstMessageMs: opts.firstMessageMs } : {}),
    processorFactory: () => {
      const p = processor();
      const close = p.close.bind(p);
      p.close = (reason) => {
        closes.push(reason);
        close(reason);
      };
      return p;
    },
  });
  const port = await server.listen(opts.address ?? '127.0.0.1:0');
  const address = opts.address ?? `127.0.0.1:${port}`;
  return { server, address, closes };
}

type Stream = grpc.ClientDuplexStream<ProcessingRequest, ProcessingResponse>;

function open(address: string): { stream: Stream; client: grpc.Client } {
  const client = new Client(address, grpc.credentials.createInsecure());
  const stream = (client as unknown as { Process: () => Stream }).Process();
  return { stream, client };
}

const headers = (path: string): ProcessingRequest => ({
  request_headers: {
    headers: {
      headers: [
        { key: ':path', raw_value: Buffer.from(path) },
        { key: ':method', raw_value: Buffer.from('GET') },
      ],
    },
    end_of_stream: true,
  },
});

const next = (stream: Stream): Promise<ProcessingResponse> =>
  new Promise((resolve, reject) => {
    stream.once('data', resolve);
    stream.once('error', reject);
  });

const until = async (pred: () => boolean): Promise<void> => {
  for (let i = 0; i < 100 && !pred(); i++) await new Promise((r) => setTimeout(r, 10));
};

describe('ExtProcServer', () => {
  it('answers every phase in order and treats a half-close as a normal end', async () => {
    const { server, address, closes } = await serve(() => new PassThroughProcessor());
    const { stream, client } = open(address);
    try {
      stream.write(headers('/anything'));
      expect(await next(stream)).toMatchObject({ request_headers: { response: { status: 'CONTINUE' } } });
      stream.write({ request_body: { body: Buffer.from('x'), end_of_stream: true } });
      expect(await next(stream)).toMatchObject({ request_body: { response: {} } });
      const ended = new Promise((resolve) => stream.on('end', resolve));
      stream.end();
      await ended;
      await until(() => closes.length > 0);
      expect(closes).toEqual(['ended']);
    } finally {
      client.close();
      await server.stop(100);
    }
  });

  it('ends the call with status OK once Envoy half-closes (Envoy waits for that, not a reset)', async () => {
    // envoy/envoy.yaml turns on ext_proc_graceful_grpc_close: at the end of a request Envoy
    // half-closes the stream and waits (1 s) for the server to end the call; only then does the
    // stream end without an RST_STREAM. An answer still being worked on is written first.
    let release: () => void = () => undefined;
    class Slow extends PassThroughProcessor {
      override requestBody(): Promise<ProcessingResponse> {
        return new Promise((resolve) => {
          release = () => resolve({ request_body: { response: { status: 'CONTINUE' } } });
        });
      }
    }
    const { server, address, closes } = await serve(() => new Slow());
    const { stream, client } = open(address);
    try {
      const answers: ProcessingResponse[] = [];
      stream.on('data', (m: ProcessingResponse) => answers.push(m));
      const status = new Promise<grpc.StatusObject>((resolve) => stream.on('status', resolve));
      stream.write(headers('/x'));
      stream.write({ request_body: { body: Buffer.from('{}'), end_of_stream: true } });
      await until(() => answers.length === 1);
      stream.end();
      await new Promise((r) => setTimeout(r, 20));
      expect(closes).toEqual([]);
      release();
      expect((await status).code).toBe(grpc.status.OK);
      expect(answers.map((a) => Object.keys(a)[0])).toEqual(['request_headers', 'request_body']);
      expect(closes).toEqual(['ended']);
    } finally {
      client.close();
      await server.stop(100);
    }
  });

  it('treats a cancelled stream as a normal end and goes on serving', async () => {
    const { server, address, closes } = await serve(() => new PassThroughProcessor());
    const { stream, client } = open(address);
    stream.on('error', () => undefined);
    try {
      stream.write(headers('/x'));
      await next(stream);
      stream.cancel();
      await until(() => closes.length > 0);
      // grpc-js may surface a client cancel as the end of the readable side first; both are
      // normal ends for the processor, which is closed exactly once either way.
      expect(closes).toHaveLength(1);
      expect(['cancelled', 'ended']).toContain(closes[0]);
      const second = open(address);
      second.stream.write(headers('/y'));
      expect(await next(second.stream)).toMatchObject({
        request_headers: { response: { status: 'CONTINUE' } },
      });
      second.stream.end();
      second.client.close();
    } finally {
      client.close();
      await server.stop(100);
    }
  });

  it('closes a stream the client cancels before its first message, however soon', async () => {
    const { server, address } = await serve(() => new PassThroughProcessor(), { firstMessageMs: 500 });
    const { stream, client } = open(address);
    stream.on('error', () => undefined);
    try {
      await until(() => server.activeStreams === 1);
      expect(server.activeStreams).toBe(1);
      stream.cancel();
      await until(() => server.activeStreams === 0);
      expect(server.activeStreams).toBe(0);
      // Cancelled at once, as the stream opens: the server may see the cancel before the call.
      for (let i = 0; i < 20; i++) {
        const early = (client as unknown as { Process: () => Stream }).Process();
        early.on('error', () => undefined);
        early.cancel();
      }
      // grpc-js reports none of these cancels: the streams end when they stay silent past firstMessageMs.
      await until(() => server.activeStreams === 20);
      await new Promise((r) => setTimeout(r, 600));
      await until(() => server.activeStreams === 0);
      expect(server.activeStreams).toBe(0);
      // A stream that sends its first message in time is served as ever.
      const late = open(address);
      await new Promise((r) => setTimeout(r, 300));
      late.stream.write(headers('/z'));
      expect(await next(late.stream)).toMatchObject({
        request_headers: { response: { status: 'CONTINUE' } },
      });
      late.stream.end();
      late.client.close();
    } finally {
      client.close();
      await server.stop(100);
    }
  });

  it('ends the stream with the coded gRPC status when a processor fails', async () => {
    class Failing extends PassThroughProcessor {
      override requestHeaders(): Promise<ProcessingResponse> {
        return Promise.reject(new SagameshError(ERRORS.PROTOCOL, 'boom'));
      }
    }
    const { server, address } = await serve(() => new Failing());
    const { stream, client } = open(address);
    try {
      stream.write(headers('/x'));
      await expect(next(stream)).rejects.toMatchObject({
        code: grpc.status.FAILED_PRECONDITION,
        details: expect.stringContaining('SAGAMESH_ERR_PROTOCOL') as unknown,
      });
    } finally {
      client.close();
      await server.stop(100);
    }
  });

  it('ends a stream whose messages come out of Envoy`s order (a second request_headers starts nothing)', async () => {
    let headersSeen = 0;
    class Counting extends PassThroughProcessor {
      override requestHeaders(h: Parameters<Processor['requestHeaders']>[0]): Promise<ProcessingResponse> {
        headersSeen += 1;
        return super.requestHeaders(h);
      }
    }
    const { server, address } = await serve(() => new Counting());
    try {
      for (const [first, second] of [
        [headers('/x'), headers('/x')],
        [{ response_headers: { headers: { headers: [] } } }, { request_body: { body: Buffer.from('{}') } }],
      ] as [ProcessingRequest, ProcessingRequest][]) {
        const { stream, client } = open(address);
        stream.write(first);
        await next(stream);
        stream.write(second);
        await expect(next(stream)).rejects.toMatchObject({
          code: grpc.status.FAILED_PRECONDITION,
          details: expect.stringContaining('SAGAMESH_ERR_PROTOCOL') as unknown,
        });
        client.close();
      }
      expect(headersSeen).toBe(1);
    } finally {
      await server.stop(100);
    }
  });

  it('refuses a message over maxMessageBytes with RESOURCE_EXHAUSTED', async () => {
    const { server, address } = await serve(() => new PassThroughProcessor(), { maxMessageBytes: 64 * 1024 });
    const { stream, client } = open(address);
    try {
      stream.write(headers('/x'));
      await next(stream);
      stream.write({ request_body: { body: Buffer.alloc(128 * 1024, 'x'), end_of_stream: true } });
      await expect(next(stream)).rejects.toMatchObject({ code: grpc.status.RESOURCE_EXHAUSTED });
    } finally {
      client.close();
      await server.stop(100);
    }
  });

  it('takes over a unix socket a killed sagamesh left behind, and never one that is alive', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sagamesh-sock-'));
    const socket = path.join(dir, 'extproc.sock');
    // What kill -9 leaves: the socket file, with nobody listening on it.
    const script = `require('net').createServer().listen(${JSON.stringify(socket)}, () => process.kill(process.pid, 'SIGKILL'))`;
    expect(() => execFileSync(process.execPath, ['-e', script], { stdio: 'ignore' })).toThrow(/SIGKILL/);
    expect(fs.lstatSync(socket).isSocket()).toBe(true);
    const { server, address } = await serve(() => new PassThroughProcessor(), { address: `unix:${socket}` });
    try {
      expect(fs.statSync(socket).mode & 0o777).toBe(0o660);
      const { stream, client } = open(address);
      stream.write(headers('/x'));
      expect(await next(stream)).toMatchObject({ request_headers: { response: { status: 'CONTINUE' } } });
      client.close();
      // A second server on the same, live socket fails instead of stealing it.
      const second = new ExtProcServer({
        logger: pino({ level: 'silent' }),
        processorFactory: () => new PassThroughProcessor(),
      });
      await expect(second.listen(`unix:${socket}`)).rejects.toThrow(/EADDRINUSE/);
    } finally {
      await server.stop(100);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reports SERVING on the standard gRPC health service, NOT_SERVING once stopping', async () => {
    const { server, address } = await serve(() => new PassThroughProcessor());
    const health = new HealthClient(address, grpc.credentials.createInsecure());
    const check = (svc: string) =>
      new Promise<{ status: string }>((resolve, reject) =>
        (
          health as unknown as {
            check: (r: object, cb: (e: Error | null, r: { status: string }) => void) => void;
          }
        ).check({ service: svc }, (err, res) => (err ? reject(err) : resolve(res))),
      );
    try {
      expect(await check('')).toEqual({ status: 'SERVING' });
      expect(await check('envoy.service.ext_proc.v3.ExternalProcessor')).toEqual({ status: 'SERVING' });
      server.setServing(false);
      expect(await check('')).toEqual({ status: 'NOT_SERVING' });
    } finally {
      health.close();
      await server.stop(100);
    }
  });
});
