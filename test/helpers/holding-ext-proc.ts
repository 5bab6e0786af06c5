/**
 * A stand-in for sagamesh for tests of the gateway's limits (test/integration/istio-translation.test.ts):
 * it answers request headers with CONTINUE and holds its answer to the request body for `holdMs` (a
 * saga that runs that long), then ends the request with a 201 ImmediateResponse. Records how each
 * stream ended and the deadline Envoy gave it.
 */
import * as grpc from '@grpc/grpc-js';
import { externalProcessorService } from '../../src/extproc/protos';

export async function holdingExtProc(
  holdMs: number,
): Promise<{ port: number; ends: string[]; deadlines: number[]; close: () => void }> {
  const ends: string[] = [];
  const deadlines: number[] = [];
  const server = new grpc.Server();
  server.addService(externalProcessorService(), {
    Process: (call: grpc.ServerDuplexStream<Record<string, unknown>, object>) => {
      let timer: NodeJS.Timeout | undefined;
      // Infinity unless Envoy sent a grpc-timeout header (what a stream timeout would send).
      const deadline = call.getDeadline();
      deadlines.push(deadline instanceof Date ? deadline.getTime() : deadline);
      call.on('data', (msg: Record<string, unknown>) => {
        if (msg['request_headers']) call.write({ request_headers: { response: { status: 'CONTINUE' } } });
        if (msg['request_body'])
          timer = setTimeout(
            () =>
              call.write({ immediate_response: { status: { code: 'Created' }, body: Buffer.from('held') } }),
            holdMs,
          );
      });
      call.on('cancelled', () => {
        clearTimeout(timer);
        ends.push('cancelled');
      });
      call.on('end', () => {
        ends.push('end');
        call.end();
      });
      call.on('error', () => undefined);
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  return { port, ends, deadlines, close: () => server.forceShutdown() };
}
