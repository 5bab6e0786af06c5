import { toSagameshError } from '../errors';
import { formatProblem, isDefinitionProblem } from '../definition/loader';
import type { CliIo } from './io';

/**
 * Prints an error the way `sagamesh` does at startup: code, message, then every detail on its own
 * line. An uncoded error is reported as SAGAMESH_ERR_INTERNAL: every failure has a code.
 */
export function reportError(io: CliIo, thrown: unknown): void {
  const err = toSagameshError(thrown);
  io.stderr(`sagamesh: ${err.code}: ${err.message}\n`);
  for (const detail of err.details) {
    io.stderr(`  ${isDefinitionProblem(detail) ? formatProblem(detail) : String(detail)}\n`);
  }
}
