import { isSagameshError } from '../errors';
import { formatProblem, isDefinitionProblem } from '../saga/loader';
import type { CliIo } from './io';

/** Prints an error the way `sagamesh` does at startup: code, message, then every detail on its own line. */
export function reportError(io: CliIo, err: unknown): void {
  if (isSagameshError(err)) {
    io.stderr(`sagamesh: ${err.code}: ${err.message}\n`);
    for (const detail of err.details) {
      io.stderr(`  ${isDefinitionProblem(detail) ? formatProblem(detail) : String(detail)}\n`);
    }
  } else {
    io.stderr(`sagamesh: ${err instanceof Error ? err.message : String(err)}\n`);
  }
}
