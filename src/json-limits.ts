/**
 * Structural limits of a JSON document — how deep it nests, how many values it holds — measured
 * in one pass over its text: no recursion and nothing built. So a hostile document is refused
 * before JSON.parse builds it and before a recursive walker meets it: JSON.stringify (the saga
 * log serialises every record) overflows the stack near 4,500 levels, and the logger and the
 * templates walk values the same way.
 *
 * The text is taken to be JSON; JSON.parse still decides whether it is. Example:
 * `{"a":[1,[2]],"b":{}}` nests 3 deep (object, array, array) and holds 5 values: the members a and
 * b, the items 1 and [2] of a, and the 2 inside.
 */
export interface JsonLimits {
  /** Deepest nesting of arrays and objects: `1` is depth 0, `[]` and `{}` depth 1. */
  readonly maxDepth: number;
  /** Most array items plus object members in the whole document. */
  readonly maxValues: number;
}

/**
 * Defaults for a saga request body (SAGAMESH_MAX_BODY_DEPTH, SAGAMESH_MAX_BODY_VALUES). 64 levels
 * is .NET System.Text.Json's default and far beyond what a business request nests; 10,000 values
 * keep JSON.parse of one body to a few milliseconds of the event loop, which every saga shares.
 */
export const DEFAULT_BODY_LIMITS: JsonLimits = Object.freeze({ maxDepth: 64, maxValues: 10_000 });

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const SPACE = 0x20;
const TAB = 0x09;
const LF = 0x0a;
const CR = 0x0d;

/** What exceeds the limits (a sentence for the coded error's detail), or undefined. */
export function jsonShapeProblem(text: string, limits: JsonLimits): string | undefined {
  const { maxDepth, maxValues } = limits;
  let depth = 0;
  let values = 0;
  /** Just after `[` or `{`: the next token is the container's first value, unless it closes it. */
  let opened = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === SPACE || c === LF || c === CR || c === TAB) continue;
    if (opened) {
      opened = false;
      if (c !== CLOSE_ARRAY && c !== CLOSE_OBJECT && ++values > maxValues) return tooMany(maxValues);
    }
    switch (c) {
      case QUOTE:
        // Skip the string: brackets and commas in it are text.
        for (i++; i < text.length; i++) {
          const d = text.charCodeAt(i);
          if (d === BACKSLASH) i++;
          else if (d === QUOTE) break;
        }
        break;
      case COMMA:
        if (++values > maxValues) return tooMany(maxValues);
        break;
      case OPEN_ARRAY:
      case OPEN_OBJECT:
        if (++depth > maxDepth) return `the body nests more than ${maxDepth} levels deep`;
        opened = true;
        break;
      case CLOSE_ARRAY:
      case CLOSE_OBJECT:
        depth--;
        break;
      default:
        break;
    }
  }
  return undefined;
}

function tooMany(maxValues: number): string {
  return `the body holds more than ${maxValues} values (array items and object members)`;
}
