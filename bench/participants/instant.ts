import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A participant that answers every request at once with a small JSON body, for `bench/caller.ts`:
 * forked, it listens on a free loopback port and sends the port to its parent.
 */
const server = http.createServer((req, res) => {
  req.resume();
  req.on('end', () =>
    res.writeHead(201, { 'content-type': 'application/json' }).end('{"id":"b1","status":"booked"}'),
  );
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => process.send?.((server.address() as AddressInfo).port));
