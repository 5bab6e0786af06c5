import Ajv from 'ajv';
import type { ErrorObject, SchemaObject, ValidateFunction } from 'ajv';
import { ERRORS, SagameshError } from '../errors';
import { API_VERSION } from './definition';
import { DURATION_PATTERN } from './duration';
import type { Path, PathSegment } from './problems';

/**
 * The JSON Schema of a saga file (apiVersion sagamesh.dev/v1alpha1) and the raw shapes it admits.
 * The Raw* types are what a value is once its validator said yes — they are only ever reached
 * through the type guards below, never by a cast. Defaults live here too, next to the format.
 */

export const DEFAULTS = Object.freeze({
  deadlineMs: 30_000,
  maxDeadlineMs: 60_000,
  action: Object.freeze({
    timeoutMs: 5_000,
    retry: Object.freeze({ attempts: 3, backoffMs: 100, maxBackoffMs: 2_000 }),
    success: Object.freeze([200, 201, 202, 204]),
  }),
  compensation: Object.freeze({
    timeoutMs: 5_000,
    retry: Object.freeze({ attempts: 10, backoffMs: 200, maxBackoffMs: 10_000 }),
    success: Object.freeze([200, 202, 204]),
  }),
  successStatus: 200,
  failureStatus: 409,
});

export const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;

export type RawHeaders = Record<string, string | number | boolean>;

export interface RawRequest {
  method: string;
  url: string;
  headers?: RawHeaders;
  body?: unknown;
}

export interface RawCall {
  request: RawRequest;
  timeout?: string;
  retry?: { attempts?: number; backoff?: string; maxBackoff?: string };
  success?: number[];
}

export interface RawStep {
  name: string;
  dependsOn?: string[];
  action: RawCall;
  compensation?: RawCall;
}

export interface RawResponse {
  success?: { status?: number; headers?: RawHeaders; body?: unknown };
  failure?: { status?: number };
}

export interface RawUpstream {
  headers?: RawHeaders;
  body?: unknown;
}

export interface RawEnvelope {
  metadata: { name: string };
  spec: {
    match: { method: string; path: string };
    undo?: { match: { method: string; path: string } };
    deadline?: string;
    respond?: 'aggregate' | 'upstream';
    input?: { schema: Record<string, unknown> };
  };
}

const text = (description: string, pattern: string, maxLength = 253): SchemaObject => ({
  type: 'string',
  pattern,
  maxLength,
  description,
});
const duration = text('a duration like 500ms, 2s or 1m', DURATION_PATTERN, 12);
/**
 * A saga's path is written plainly, so that its canonical reading (saga/path-match.ts) is itself:
 * segments of unreserved characters and `!$&'()*+,=:@`, none empty or starting or ending with a dot.
 */
const MATCH_PATH = text(
  "a path like /trips: segments of letters, digits and -._~!$&'()*+,=:@, none starting or ending with a dot; no trailing slash, %-escape, ; or query",
  "^/$|^(?:/[A-Za-z0-9_~!$&'()*+,=:@-](?:[A-Za-z0-9._~!$&'()*+,=:@-]*[A-Za-z0-9_~!$&'()*+,=:@-])?)+$",
  2048,
);
/** An undo route: a plain path with one `{sagaId}` segment (compile-saga.ts checks there is one). */
const UNDO_PATH = text(
  'a path like /trips/{sagaId}: plain segments as in match.path, and one segment {sagaId}',
  "^(?:/(?:\\{sagaId\\}|[A-Za-z0-9_~!$&'()*+,=:@-](?:[A-Za-z0-9._~!$&'()*+,=:@-]*[A-Za-z0-9_~!$&'()*+,=:@-])?))+$",
  2048,
);
const method = { type: 'string', enum: METHODS };
const status = { type: 'integer', minimum: 100, maximum: 599 };
const headers = {
  type: 'object',
  propertyNames: text('an HTTP header name', "^[A-Za-z0-9!#$%&'*+.^_`|~-]+$", 128),
  additionalProperties: { type: ['string', 'number', 'boolean'] },
};
const closed = (properties: Record<string, SchemaObject>, required: string[] = []): SchemaObject => ({
  type: 'object',
  additionalProperties: false,
  properties,
  required,
});

const request = closed({ method, url: { type: 'string', minLength: 1 }, headers, body: {} }, [
  'method',
  'url',
]);

const call = closed(
  {
    request: { $ref: '#/$defs/request' },
    timeout: duration,
    retry: closed({
      attempts: { type: 'integer', minimum: 1, maximum: 100 },
      backoff: duration,
      maxBackoff: duration,
    }),
    success: { type: 'array', items: status, minItems: 1, uniqueItems: true },
  },
  ['request'],
);

const stepName = text(
  'a step name: a lowercase letter, then lowercase letters, digits, _ or -',
  '^[a-z][a-z0-9_-]*$',
  63,
);

const step = closed(
  {
    name: stepName,
    dependsOn: { type: 'array', items: { type: 'string' }, uniqueItems: true },
    action: { $ref: '#/$defs/call' },
    compensation: { $ref: '#/$defs/call' },
  },
  ['name', 'action'],
);

const response = closed({
  success: closed({ status: { type: 'integer', minimum: 200, maximum: 299 }, headers, body: {} }),
  failure: closed({ status: { type: 'integer', minimum: 400, maximum: 599 } }),
});

const upstream = closed({ headers, body: {} });

const SCHEMA_ID = 'https://sagamesh.dev/schemas/saga-v1alpha1.json';

/** The whole file. `input.schema` and the `body` templates are the only open objects. */
export const SAGA_SCHEMA: SchemaObject = {
  $id: SCHEMA_ID,
  ...closed(
    {
      apiVersion: { const: API_VERSION },
      kind: { const: 'Saga' },
      metadata: closed(
        { name: text('a DNS label: lowercase letters, digits and -', '^[a-z0-9]([a-z0-9-]*[a-z0-9])?$', 63) },
        ['name'],
      ),
      spec: closed(
        {
          match: closed({ method, path: MATCH_PATH }, ['method', 'path']),
          deadline: duration,
          respond: { enum: ['aggregate', 'upstream'] },
          undo: closed({ match: closed({ method, path: UNDO_PATH }, ['method', 'path']) }, ['match']),
          input: closed({ schema: { type: 'object' } }, ['schema']),
          steps: { type: 'array', minItems: 1, items: { $ref: '#/$defs/step' } },
          upstream: { $ref: '#/$defs/upstream' },
          response: { $ref: '#/$defs/response' },
        },
        ['match', 'steps'],
      ),
    },
    ['apiVersion', 'kind', 'metadata', 'spec'],
  ),
  $defs: { step, call, request, response, upstream },
};

/** The top of a file without its open parts: steps, response and upstream are checked alone. */
const ENVELOPE_SCHEMA: SchemaObject = {
  type: 'object',
  required: ['metadata', 'spec'],
  properties: {
    metadata: closed({ name: { type: 'string' } }, ['name']),
    spec: {
      type: 'object',
      required: ['match'],
      properties: {
        match: closed({ method, path: { type: 'string' } }, ['method', 'path']),
        undo: closed({ match: closed({ method, path: { type: 'string' } }, ['method', 'path']) }, ['match']),
        deadline: duration,
        respond: { enum: ['aggregate', 'upstream'] },
        input: closed({ schema: { type: 'object' } }, ['schema']),
      },
    },
  },
};

const ajv = new Ajv({ allErrors: true, verbose: true, strict: true, allowUnionTypes: true });
ajv.addSchema(SAGA_SCHEMA);

function part<T>(ref: string): ValidateFunction<T> {
  const validate = ajv.getSchema<T>(`${SCHEMA_ID}#/$defs/${ref}`);
  if (!validate) throw new SagameshError(ERRORS.INTERNAL, `saga schema has no $defs/${ref}`);
  return validate;
}

const validateFile = ajv.getSchema(SCHEMA_ID);
const validateEnvelope = ajv.compile<RawEnvelope>(ENVELOPE_SCHEMA);
const validateStep = part<RawStep>('step');
const validateCall = part<RawCall>('call');
const validateRequest = part<RawRequest>('request');
const validateResponse = part<RawResponse>('response');
const validateUpstream = part<RawUpstream>('upstream');

/**
 * Type guards, so the loader can compile every part that is well-formed — a bad timeout must not
 * hide a bad expression in the same step — and skip what the schema problems already cover.
 */
export const isRawEnvelope = (v: unknown): v is RawEnvelope => validateEnvelope(v);
export const isRawStep = (v: unknown): v is RawStep => validateStep(v);
export const isRawCall = (v: unknown): v is RawCall => validateCall(v);
export const isRawRequest = (v: unknown): v is RawRequest => validateRequest(v);
export const isRawResponse = (v: unknown): v is RawResponse => validateResponse(v);
export const isRawUpstream = (v: unknown): v is RawUpstream => validateUpstream(v);

/**
 * Compiles a saga's `input.schema` (JSON Schema draft-07, no remote refs, no `format`s beyond
 * Ajv's core). Unknown keywords are errors: a misspelt `requird` would otherwise check nothing.
 */
export function compileInputSchema(
  schema: Record<string, unknown>,
): { validate: (body: unknown) => readonly string[] } | { error: string } {
  const inputAjv = new Ajv({
    allErrors: true,
    strict: true,
    strictTypes: false,
    strictTuples: false,
    strictRequired: false,
    allowUnionTypes: true,
    logger: false,
  });
  let check: ValidateFunction;
  try {
    check = inputAjv.compile(schema);
  } catch (err) {
    return { error: err instanceof Error ? err.message : String(err) };
  }
  return {
    validate: (body) => {
      if (check(body)) return [];
      return (check.errors ?? []).map((e) => {
        const extra = e.keyword === 'additionalProperties' ? ` "${String(e.params.additionalProperty)}"` : '';
        return `${e.instancePath === '' ? '/' : e.instancePath}: ${e.message ?? 'is invalid'}${extra}`;
      });
    },
  };
}

export interface SchemaProblem {
  readonly path: Path;
  readonly message: string;
  /** Points at the key (an unknown field or a bad header name), not at the value. */
  readonly onKey: boolean;
}

/** Every schema problem of a whole file, with field paths instead of JSON pointers. */
export function schemaProblems(data: unknown): SchemaProblem[] {
  if (!validateFile) throw new SagameshError(ERRORS.INTERNAL, 'saga schema is not registered');
  if (validateFile(data)) return [];
  return (validateFile.errors ?? []).flatMap((e) => describe(e, data));
}

function describe(e: ErrorObject, data: unknown): SchemaProblem[] {
  const path = pointerToPath(e.instancePath, data);
  const p = e.params;
  const description: unknown = isRecord(e.parentSchema) ? e.parentSchema.description : undefined;
  switch (e.keyword) {
    case 'propertyNames':
      return []; // the nested error names the property
    case 'additionalProperties': {
      const allowed =
        isRecord(e.parentSchema) && isRecord(e.parentSchema.properties) ? e.parentSchema.properties : {};
      const field = String(p.additionalProperty);
      const known = Object.keys(allowed).join(', ');
      return [{ path: [...path, field], message: `unknown field (expected one of: ${known})`, onKey: true }];
    }
    case 'enum':
      return [{ path, message: `must be one of: ${toList(p.allowedValues)}`, onKey: false }];
    case 'const':
      return [{ path, message: `must be ${JSON.stringify(p.allowedValue)}`, onKey: false }];
    case 'pattern':
    case 'maxLength': {
      const what = typeof description === 'string' ? `must be ${description}` : (e.message ?? 'is invalid');
      if (e.propertyName !== undefined) {
        return [{ path: [...path, e.propertyName], message: `${what}`, onKey: true }];
      }
      return [{ path, message: what, onKey: false }];
    }
    default:
      return [{ path, message: e.message ?? 'is invalid', onKey: false }];
  }
}

function toList(values: unknown): string {
  return Array.isArray(values) ? values.map((v) => String(v)).join(', ') : String(values);
}

/** `/spec/steps/1/name` → `['spec', 'steps', 1, 'name']`; the data tells indexes from keys. */
export function pointerToPath(pointer: string, data: unknown): PathSegment[] {
  if (pointer === '') return [];
  const out: PathSegment[] = [];
  let node = data;
  for (const raw of pointer.slice(1).split('/')) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(node)) {
      const index = Number(key);
      out.push(index);
      node = node[index];
    } else {
      out.push(key);
      node = isRecord(node) ? node[key] : undefined;
    }
  }
  return out;
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
