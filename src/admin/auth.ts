import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { Secret } from '../config/secret';
import { ERRORS, SagameshError } from '../errors';

/**
 * The mutating admin endpoints need `Authorization: Bearer <SAGAMESH_ADMIN_TOKEN>`. Without a
 * configured token they are refused (403), never open. The comparison hashes both sides first, so
 * it takes the same time whatever the length or content of the guess.
 */
export function authorize(headers: IncomingHttpHeaders, token: Secret | undefined): void {
  if (!token) {
    throw new SagameshError(ERRORS.ADMIN_TOKEN_NOT_CONFIGURED, 'set SAGAMESH_ADMIN_TOKEN to enable it');
  }
  const match = /^Bearer\s+(\S+)\s*$/i.exec(headers.authorization ?? '');
  if (!match?.[1])
    throw new SagameshError(ERRORS.ADMIN_UNAUTHORIZED, 'expected Authorization: Bearer <token>');
  if (!sameSecret(match[1], token.reveal()))
    throw new SagameshError(ERRORS.ADMIN_UNAUTHORIZED, 'wrong token');
}

/** The realm a browser shows in its prompt for the admin token (`WWW-Authenticate: Basic`). */
export const BASIC_REALM = 'sagamesh admin';

/**
 * Whether a read may see saga contents — the request and the step responses. Always, unless
 * SAGAMESH_ADMIN_PROTECT_CONTENTS; then only with the admin token, as `Bearer <token>` (API
 * clients, the CLI) or as the password of HTTP Basic with any user name (how a browser presents
 * it, from its own prompt: the token never appears in a URL). Basic is taken for reads only: a
 * browser sends it with any request to the origin, so a mutating endpoint taking it could be
 * triggered from another site. No credentials: `withheld`; wrong ones: 401, so a typo is not
 * mistaken for an empty saga.
 */
export function contentsAccess(
  headers: IncomingHttpHeaders,
  token: Secret | undefined,
  protect: boolean,
): 'shown' | 'withheld' {
  if (!protect) return 'shown';
  const given = presentedToken(headers.authorization);
  if (given === undefined) return 'withheld';
  if (!token || !sameSecret(given, token.reveal())) {
    throw new SagameshError(ERRORS.ADMIN_UNAUTHORIZED, 'wrong token');
  }
  return 'shown';
}

/** The token in `Bearer <token>` or in `Basic base64(<any user>:<token>)`; undefined when absent. */
function presentedToken(authorization: string | undefined): string | undefined {
  if (!authorization) return undefined;
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
  if (bearer?.[1]) return bearer[1];
  const basic = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(authorization);
  if (basic?.[1]) {
    const decoded = Buffer.from(basic[1], 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon >= 0) return decoded.slice(colon + 1);
  }
  throw new SagameshError(ERRORS.ADMIN_UNAUTHORIZED, 'expected Authorization: Bearer <token> or Basic');
}

function sameSecret(given: string, expected: string): boolean {
  const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();
  return timingSafeEqual(digest(given), digest(expected));
}
