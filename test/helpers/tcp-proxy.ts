import net from 'node:net';

/**
 * A loopback TCP proxy in front of one server, to lose a request or an answer on purpose — what a
 * member that dies mid-call does to its clients, but at a chosen moment:
 * - `holdRequests()`: the client's bytes stop reaching the server (a request that never arrives);
 * - `holdAnswers()`: the server's bytes stop reaching the client (a request served, its answer lost);
 * - `cut()`: every connection is destroyed, the held bytes with it, and the proxy passes bytes
 *   again for the connections that follow.
 */
export interface TcpProxy {
  /** host:port to connect to instead of the server. */
  readonly endpoint: string;
  holdRequests(): void;
  holdAnswers(): void;
  /** Bytes held back since the last cut. */
  held(): number;
  cut(): void;
  close(): Promise<void>;
}

export async function tcpProxy(target: string): Promise<TcpProxy> {
  const [host, port] = target.split(':');
  let holding: 'requests' | 'answers' | undefined;
  let held = 0;
  const sockets = new Set<net.Socket>();
  const track = (s: net.Socket): void => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => s.destroy());
  };
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(port), host);
    track(client);
    track(upstream);
    const pass = (from: net.Socket, to: net.Socket, when: 'requests' | 'answers'): void => {
      from.on('data', (chunk: Buffer) => {
        if (holding === when) held += chunk.length;
        else to.write(chunk);
      });
      from.on('close', () => to.destroy());
    };
    pass(client, upstream, 'requests');
    pass(upstream, client, 'answers');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port: own } = server.address() as net.AddressInfo;
  return {
    endpoint: `127.0.0.1:${own}`,
    holdRequests: () => void (holding = 'requests'),
    holdAnswers: () => void (holding = 'answers'),
    held: () => held,
    cut: () => {
      for (const s of sockets) s.destroy();
      holding = undefined;
      held = 0;
    },
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
