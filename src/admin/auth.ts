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

function sameSecret(given: string, expected: string): boolean {
  const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();
  return timingSafeEqual(digest(given), digest(expected));
}
