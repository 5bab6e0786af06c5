import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { SagameshError } from '../errors';
import { ERRORS, SagameshError as CodedError } from '../errors';

/**
 * The admin server's request and answer shapes, and the plumbing between them and node:http.
 * Handlers are plain async functions from AdminRequest to AdminAnswer and throw SagameshErrors;
 * failures always go out as `{ error: { code, message } }` with the registry's HTTP status.
 */

export interface AdminRequest {
  readonly method: string;
  readonly path: string;
  readonly query: URLSearchParams;
  readonly headers: IncomingHttpHeaders;
  /** Path parameters (`/sagas/:id` → `{ id }`), already percent-decoded. */
  readonly params: Readonly<Record<string, string>>;
  /** The parsed JSON body; `{}` when there is none. Throws ADMIN_BAD_REQUEST for anything else. */
  json(): Promise<unknown>;
  /** Whether this request may see saga contents (auth.ts contentsAccess); throws 401 for a wrong token. */
  contents(): 'shown' | 'withheld';
}

export type AdminAnswer = (
  | { readonly status: number; readonly json: unknown }
  | { readonly status: number; readonly html: string }
  | { readonly status: number; readonly text: string; readonly contentType: string }
) & { readonly headers?: Readonly<Record<string, string>> };

export type Handler = (request: AdminRequest) => Promise<AdminAnswer>;

export interface Route {
  readonly method: 'GET' | 'POST';
  /** `/sagas/:id/abort`: segments starting with `:` are parameters. */
  readonly path: string;
  /** Changes sagas: needs the admin token. */
  readonly mutating?: boolean;
  readonly handler: Handler;
}

const MAX_BODY_BYTES = 16 * 1024;

export function readJsonBody(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new CodedError(ERRORS.ADMIN_BAD_REQUEST, `the body is over ${MAX_BODY_BYTES} bytes`));
        req.destroy();
      } else chunks.push(chunk);
    });
    req.on('error', reject);
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8').trim();
      if (text === '') return resolve({});
      try {
        resolve(JSON.parse(text) as unknown);
      } catch (err) {
        reject(new CodedError(ERRORS.ADMIN_BAD_REQUEST, `the body is not JSON: ${String(err)}`));
      }
    });
  });
}

const SECURITY_HEADERS = {
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
};

export function send(res: ServerResponse, answer: AdminAnswer): void {
  const headers = { ...SECURITY_HEADERS, ...answer.headers };
  if ('json' in answer) {
    res.writeHead(answer.status, { ...headers, 'content-type': 'application/json; charset=utf-8' });
    res.end(`${JSON.stringify(answer.json)}\n`);
  } else if ('html' in answer) {
    res.writeHead(answer.status, {
      ...headers,
      'content-type': 'text/html; charset=utf-8',
      // The UI is server-rendered: no script, no outside resources, no framing.
      'content-security-policy':
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'",
    });
    res.end(answer.html);
  } else {
    res.writeHead(answer.status, { ...headers, 'content-type': answer.contentType });
    res.end(answer.text);
  }
}

export function errorAnswer(err: SagameshError): AdminAnswer {
  return { status: err.spec.httpStatus, json: { error: err.toJSON() } };
}

/** Matches `/sagas/:id` against a path; undefined when it does not match. */
export function matchPath(pattern: string, path: string): Record<string, string> | undefined {
  const want = pattern.split('/');
  const got = path.split('/');
  if (want.length !== got.length) return undefined;
  const params: Record<string, string> = {};
  for (const [i, segment] of want.entries()) {
    const actual = got[i] ?? '';
    if (segment.startsWith(':')) {
      if (actual === '') return undefined;
      try {
        params[segment.slice(1)] = decodeURIComponent(actual);
      } catch {
        return undefined;
      }
    } else if (segment !== actual) return undefined;
  }
  return params;
}
