import { ERRORS, SagameshError } from '../errors';
import type { ErrorSpec } from '../errors';

/**
 * The CLI's side of the admin API. Failures come back as SagameshErrors carrying the server's
 * code (`SAGAMESH_ERR_SAGA_NOT_FOUND`, …), or ADMIN_UNREACHABLE when nothing answers.
 */

export interface AdminClientOptions {
  /** e.g. http://127.0.0.1:9090 */
  readonly baseUrl: string;
  readonly token?: string;
  readonly timeoutMs?: number;
}

/** `SAGAMESH_ADMIN_ADDR` (`host:port`) as a URL; the server's default otherwise. */
export function defaultAdminUrl(env: NodeJS.ProcessEnv): string {
  const addr = env['SAGAMESH_ADMIN_ADDR'] || '127.0.0.1:9090';
  return `http://${addr.replace(/^0\.0\.0\.0:/, '127.0.0.1:')}`;
}

const CODES = new Map<string, ErrorSpec>(Object.values(ERRORS).map((s) => [s.code, s]));

export class AdminClient {
  constructor(private readonly options: AdminClientOptions) {}

  get<T>(pathAndQuery: string): Promise<T> {
    return this.send<T>('GET', pathAndQuery);
  }

  post<T>(pathAndQuery: string, body?: unknown): Promise<T> {
    return this.send<T>('POST', pathAndQuery, body);
  }

  private async send<T>(method: string, pathAndQuery: string, body?: unknown): Promise<T> {
    const url = new URL(pathAndQuery, this.options.baseUrl).toString();
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers: {
          accept: 'application/json',
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
          ...(this.options.token ? { authorization: `Bearer ${this.options.token}` } : {}),
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(this.options.timeoutMs ?? 10_000),
      });
    } catch (err) {
      const cause =
        err instanceof Error ? ((err.cause as Error | undefined)?.message ?? err.message) : String(err);
      throw new SagameshError(ERRORS.ADMIN_UNREACHABLE, `${this.options.baseUrl}: ${cause}`, [], {
        cause: err,
      });
    }
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = JSON.parse(text) as unknown;
    } catch {
      parsed = undefined;
    }
    if (res.ok && parsed !== undefined) return parsed as T;
    throw remoteError(res.status, parsed, text);
  }
}

/** The server's `{ error: { code, message } }` as a SagameshError with the same code. */
function remoteError(status: number, body: unknown, text: string): SagameshError {
  const error =
    typeof body === 'object' && body !== null && 'error' in body && typeof body.error === 'object'
      ? (body.error as { code?: unknown; message?: unknown; details?: unknown })
      : undefined;
  const spec = typeof error?.code === 'string' ? CODES.get(error.code) : undefined;
  const details = Array.isArray(error?.details) ? (error.details as unknown[]) : [];
  if (spec && typeof error?.message === 'string') {
    const err = new SagameshError(spec, undefined, details);
    err.message = error.message; // the server's message already names what went wrong
    return err;
  }
  return new SagameshError(ERRORS.INTERNAL, `admin API answered ${status}: ${text.slice(0, 200)}`);
}
