import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Secret } from '../config/secret';
import { ERRORS, SagameshError, toSagameshError } from '../errors';
import type { Logger } from '../logger';
import { authorize, contentsAccess } from './auth';
import type { AdminAnswer, AdminRequest, Route } from './http';
import { errorAnswer, matchPath, readJsonBody, send } from './http';

/**
 * The admin HTTP server: health, readiness, metrics, the sagas API and the UI (routes come from
 * the modules beside this one). It binds only the configured address — loopback by default —
 * and checks the bearer token on every mutating route before its handler runs.
 */

export interface AdminServerOptions {
  readonly routes: readonly Route[];
  readonly token: Secret | undefined;
  /** SAGAMESH_ADMIN_PROTECT_CONTENTS: saga contents need the token (auth.ts contentsAccess). */
  readonly protectContents?: boolean;
  readonly logger: Logger;
}

export class AdminServer {
  private readonly server: http.Server;

  constructor(private readonly options: AdminServerOptions) {
    this.server = http.createServer((req, res) => {
      this.handle(req).then(
        (answer) => send(res, answer),
        (err: unknown) => {
          // handle() answers every error itself; this is only a last line of defence.
          options.logger.error({ err }, 'admin request failed');
          if (!res.headersSent) send(res, errorAnswer(toSagameshError(err)));
        },
      );
    });
    this.server.keepAliveTimeout = 5000;
    this.server.requestTimeout = 30_000;
  }

  /** Binds `host:port` (port 0 picks a free one); resolves with the bound port. */
  listen(address: string): Promise<number> {
    const split = address.lastIndexOf(':');
    const host = address.slice(0, split).replace(/^\[(.*)\]$/, '$1');
    const port = Number(address.slice(split + 1));
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve((this.server.address() as AddressInfo).port);
      });
    });
  }

  close(): Promise<void> {
    if (!this.server.listening) return Promise.resolve();
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private async handle(req: http.IncomingMessage): Promise<AdminAnswer> {
    const url = new URL(req.url ?? '/', 'http://admin.invalid');
    const method = req.method ?? 'GET';
    const path = url.pathname.length > 1 ? url.pathname.replace(/\/+$/, '') : url.pathname;
    try {
      let pathMatched = false;
      for (const route of this.options.routes) {
        const params = matchPath(route.path, path);
        if (!params) continue;
        pathMatched = true;
        if (route.method !== method && !(route.method === 'GET' && method === 'HEAD')) continue;
        if (route.mutating) authorize(req.headers, this.options.token);
        const request: AdminRequest = {
          method,
          path,
          query: url.searchParams,
          headers: req.headers,
          params,
          json: () => readJsonBody(req),
          contents: () =>
            contentsAccess(req.headers, this.options.token, this.options.protectContents ?? false),
        };
        const answer = await route.handler(request);
        if (route.mutating) {
          this.options.logger.info({ method, path, status: answer.status }, 'admin action');
        }
        return answer;
      }
      throw pathMatched
        ? new SagameshError(ERRORS.ADMIN_METHOD_NOT_ALLOWED, `${method} ${path}`)
        : new SagameshError(ERRORS.ADMIN_NOT_FOUND, path);
    } catch (err) {
      const e = toSagameshError(err);
      const status = e.spec.httpStatus;
      const level = status >= 500 ? 'error' : status === 401 || status === 403 ? 'warn' : 'debug';
      // Not `err: e`: pino's error serializer cannot walk the frozen ErrorSpec inside a SagameshError.
      this.options.logger[level]({ method, path, code: e.code, error: e.message }, 'admin request refused');
      return errorAnswer(e);
    }
  }
}
