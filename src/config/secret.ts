import { inspect } from 'node:util';

/**
 * A setting that must never reach a log line, an error message or a JSON dump (the admin token).
 * Serialising or inspecting it yields `[redacted]`; only `reveal()` hands out the value, so every
 * place that uses it is one grep away.
 */
export class Secret {
  readonly #value: string;

  constructor(value: string) {
    this.#value = value;
  }

  reveal(): string {
    return this.#value;
  }

  toJSON(): string {
    return '[redacted]';
  }

  toString(): string {
    return '[redacted]';
  }

  [inspect.custom](): string {
    return '[redacted]';
  }
}
