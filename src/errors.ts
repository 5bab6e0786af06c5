import { status as GrpcStatus } from '@grpc/grpc-js';

/**
 * The one registry of sagamesh's coded errors. Every error a client, a log line or a metric can
 * see is one line here; docs/errors.md lists the same codes and a unit test keeps the two in step.
 */
export interface ErrorSpec {
  readonly code: `SAGAMESH_ERR_${string}`;
  readonly message: string;
  readonly httpStatus: number;
  readonly grpcStatus: GrpcStatus;
  /** Whether the same request may succeed when tried again unchanged. */
  readonly retryable: boolean;
}

function spec(
  code: ErrorSpec['code'],
  message: string,
  httpStatus: number,
  grpcStatus: GrpcStatus,
  retryable: boolean,
): ErrorSpec {
  return Object.freeze({ code, message, httpStatus, grpcStatus, retryable });
}

export const ERRORS = Object.freeze({
  // --- startup: configuration and saga definitions
  CONFIG_INVALID: spec(
    'SAGAMESH_ERR_CONFIG_INVALID',
    'configuration is invalid',
    500,
    GrpcStatus.INVALID_ARGUMENT,
    false,
  ),
  SAGAS_DIR_UNREADABLE: spec(
    'SAGAMESH_ERR_SAGAS_DIR_UNREADABLE',
    'the sagas directory cannot be read',
    500,
    GrpcStatus.FAILED_PRECONDITION,
    false,
  ),
  DEF_YAML_SYNTAX: spec(
    'SAGAMESH_ERR_DEF_YAML_SYNTAX',
    'saga definition is not valid YAML',
    500,
    GrpcStatus.INVALID_ARGUMENT,
    false,
  ),
  DEF_SCHEMA: spec(
    'SAGAMESH_ERR_DEF_SCHEMA',
    'saga definition does not match the schema',
    500,
    GrpcStatus.INVALID_ARGUMENT,
    false,
  ),
  DEF_EXPRESSION: spec(
    'SAGAMESH_ERR_DEF_EXPRESSION',
    'saga definition has an invalid expression',
    500,
    GrpcStatus.INVALID_ARGUMENT,
    false,
  ),
  DEF_URL: spec(
    'SAGAMESH_ERR_DEF_URL',
    'step URL must fix scheme and host; only the path and query may use expressions',
    500,
    GrpcStatus.INVALID_ARGUMENT,
    false,
  ),
  DEF_STEP_REFERENCE: spec(
    'SAGAMESH_ERR_DEF_STEP_REFERENCE',
    'saga definition references an unknown or unreachable step',
    500,
    GrpcStatus.INVALID_ARGUMENT,
    false,
  ),
  DEF_CYCLE: spec(
    'SAGAMESH_ERR_DEF_CYCLE',
    'step dependencies form a cycle',
    500,
    GrpcStatus.INVALID_ARGUMENT,
    false,
  ),
  DEF_DUPLICATE: spec(
    'SAGAMESH_ERR_DEF_DUPLICATE',
    'two definitions or steps share a name or a match',
    500,
    GrpcStatus.INVALID_ARGUMENT,
    false,
  ),
  DEF_DEADLINE: spec(
    'SAGAMESH_ERR_DEF_DEADLINE',
    'saga deadline exceeds the configured maximum',
    500,
    GrpcStatus.INVALID_ARGUMENT,
    false,
  ),
  DEF_TOO_LARGE: spec(
    'SAGAMESH_ERR_DEF_TOO_LARGE',
    'saga definitions exceed a size limit (file, directory, expressions or steps)',
    500,
    GrpcStatus.INVALID_ARGUMENT,
    false,
  ),
  DEFINITIONS_INVALID: spec(
    'SAGAMESH_ERR_DEFINITIONS_INVALID',
    'saga definitions were rejected; nothing was loaded',
    500,
    GrpcStatus.INVALID_ARGUMENT,
    false,
  ),

  // --- bad client input: answered before any step is called
  PATH_AMBIGUOUS: spec(
    'SAGAMESH_ERR_PATH_AMBIGUOUS',
    'the request path spells a saga route ambiguously; send the path the saga defines',
    400,
    GrpcStatus.INVALID_ARGUMENT,
    false,
  ),
  PATH_TOO_LONG: spec(
    'SAGAMESH_ERR_PATH_TOO_LONG',
    'the request path is longer than sagamesh reads (4096 characters, query excluded)',
    414,
    GrpcStatus.INVALID_ARGUMENT,
    false,
  ),
  BODY_NOT_JSON: spec(
    'SAGAMESH_ERR_BODY_NOT_JSON',
    'request body must be a JSON document',
    400,
    GrpcStatus.INVALID_ARGUMENT,
    false,
  ),
  BODY_TOO_LARGE: spec(
    'SAGAMESH_ERR_BODY_TOO_LARGE',
    "request body is larger than the mesh takes (Envoy's buffer limit or SAGAMESH_MAX_BODY_BYTES)",
    413,
    GrpcStatus.RESOURCE_EXHAUSTED,
    false,
  ),
  BODY_TOO_COMPLEX: spec(
    'SAGAMESH_ERR_BODY_TOO_COMPLEX',
    'request body nests too deep or holds too many values',
    400,
    GrpcStatus.INVALID_ARGUMENT,
    false,
  ),
  INPUT_INVALID: spec(
    'SAGAMESH_ERR_INPUT_INVALID',
    'request body does not match the saga input',
    400,
    GrpcStatus.INVALID_ARGUMENT,
    false,
  ),
  BUDGET_INVALID: spec(
    'SAGAMESH_ERR_BUDGET_INVALID',
    "x-sagamesh-budget-ms (a parent saga's budget) is not valid",
    400,
    GrpcStatus.INVALID_ARGUMENT,
    false,
  ),

  // --- saga outcomes
  STEP_REJECTED: spec(
    'SAGAMESH_ERR_STEP_REJECTED',
    'a participant rejected a step',
    409,
    GrpcStatus.ABORTED,
    false,
  ),
  STEP_TIMEOUT: spec(
    'SAGAMESH_ERR_STEP_TIMEOUT',
    'a participant did not answer a step in time',
    504,
    GrpcStatus.DEADLINE_EXCEEDED,
    true,
  ),
  STEP_UNAVAILABLE: spec(
    'SAGAMESH_ERR_STEP_UNAVAILABLE',
    'a participant failed or was unreachable on every attempt',
    503,
    GrpcStatus.UNAVAILABLE,
    true,
  ),
  STEP_BAD_RESPONSE: spec(
    'SAGAMESH_ERR_STEP_BAD_RESPONSE',
    "a participant's success answer is not the JSON it declares, and the saga reads it",
    502,
    GrpcStatus.UNAVAILABLE,
    true,
  ),
  STEP_TEMPLATE: spec(
    'SAGAMESH_ERR_STEP_TEMPLATE',
    'a step request could not be built from the saga data',
    422,
    GrpcStatus.FAILED_PRECONDITION,
    false,
  ),
  EXPRESSION_LIMIT: spec(
    'SAGAMESH_ERR_EXPRESSION_LIMIT',
    'an expression went past a limit on its time, depth or the size of what it builds',
    422,
    GrpcStatus.FAILED_PRECONDITION,
    false,
  ),
  SAGA_DEADLINE: spec(
    'SAGAMESH_ERR_SAGA_DEADLINE',
    'the saga did not finish before its deadline',
    504,
    GrpcStatus.DEADLINE_EXCEEDED,
    true,
  ),
  SAGA_ABORTED: spec(
    'SAGAMESH_ERR_SAGA_ABORTED',
    'an operator aborted the saga; what it had done was compensated',
    409,
    GrpcStatus.ABORTED,
    false,
  ),
  SAGA_INTERRUPTED: spec(
    'SAGAMESH_ERR_SAGA_INTERRUPTED',
    'the coordinator stopped while the saga ran; it was compensated on recovery',
    503,
    GrpcStatus.UNAVAILABLE,
    true,
  ),
  UPSTREAM_FAILED: spec(
    'SAGAMESH_ERR_UPSTREAM_FAILED',
    'the upstream (pivot step) answered with a failure',
    502,
    GrpcStatus.ABORTED,
    true,
  ),
  COMPENSATION_EXHAUSTED: spec(
    'SAGAMESH_ERR_COMPENSATION_EXHAUSTED',
    'a compensation exhausted its retries; the saga is stuck and needs an operator',
    500,
    GrpcStatus.DATA_LOSS,
    false,
  ),

  // --- the saga log
  STORE_UNAVAILABLE: spec(
    'SAGAMESH_ERR_STORE_UNAVAILABLE',
    'the saga log cannot be opened or written',
    503,
    GrpcStatus.UNAVAILABLE,
    true,
  ),
  STORE_CORRUPT: spec(
    'SAGAMESH_ERR_STORE_CORRUPT',
    'the saga log is corrupt or is not a sagamesh store',
    500,
    GrpcStatus.DATA_LOSS,
    false,
  ),
  RECORD_UNSERIALIZABLE: spec(
    'SAGAMESH_ERR_RECORD_UNSERIALIZABLE',
    'a saga log record cannot be serialised as JSON; only its own saga is affected',
    500,
    GrpcStatus.INTERNAL,
    false,
  ),
  LEASE_LOST: spec(
    'SAGAMESH_ERR_LEASE_LOST',
    'another instance owns this saga now; this one stopped acting on it',
    503,
    GrpcStatus.ABORTED,
    true,
  ),
  IDEMPOTENCY_KEY_REUSED: spec(
    'SAGAMESH_ERR_IDEMPOTENCY_KEY_REUSED',
    'the Idempotency-Key was already used with a different request',
    422,
    GrpcStatus.FAILED_PRECONDITION,
    false,
  ),
  DRAINING: spec(
    'SAGAMESH_ERR_DRAINING',
    'sagamesh is shutting down and takes no new sagas; retry on another instance',
    503,
    GrpcStatus.UNAVAILABLE,
    true,
  ),
  OVERLOADED: spec(
    'SAGAMESH_ERR_OVERLOADED',
    'sagamesh has as many sagas in flight as it takes (SAGAMESH_MAX_IN_FLIGHT); retry later',
    503,
    GrpcStatus.UNAVAILABLE,
    true,
  ),

  // --- answered by Envoy (envoy/envoy.yaml's local_reply_config), for sagamesh
  COORDINATOR_UNAVAILABLE: spec(
    'SAGAMESH_ERR_COORDINATOR_UNAVAILABLE',
    'sagamesh could not be reached or its stream broke; a saga it had started is compensated when it recovers',
    503,
    GrpcStatus.UNAVAILABLE,
    true,
  ),

  // --- operating: the admin API, the CLI, definition reloads
  ADMIN_UNAUTHORIZED: spec(
    'SAGAMESH_ERR_ADMIN_UNAUTHORIZED',
    'the admin token is missing or wrong',
    401,
    GrpcStatus.UNAUTHENTICATED,
    false,
  ),
  ADMIN_TOKEN_NOT_CONFIGURED: spec(
    'SAGAMESH_ERR_ADMIN_TOKEN_NOT_CONFIGURED',
    'this admin endpoint changes sagas and is refused while no admin token is configured',
    403,
    GrpcStatus.PERMISSION_DENIED,
    false,
  ),
  ADMIN_BAD_REQUEST: spec(
    'SAGAMESH_ERR_ADMIN_BAD_REQUEST',
    'the admin request is malformed',
    400,
    GrpcStatus.INVALID_ARGUMENT,
    false,
  ),
  ADMIN_NOT_FOUND: spec(
    'SAGAMESH_ERR_ADMIN_NOT_FOUND',
    'no such admin endpoint',
    404,
    GrpcStatus.NOT_FOUND,
    false,
  ),
  ADMIN_METHOD_NOT_ALLOWED: spec(
    'SAGAMESH_ERR_ADMIN_METHOD_NOT_ALLOWED',
    'the admin endpoint does not take this method',
    405,
    GrpcStatus.UNIMPLEMENTED,
    false,
  ),
  ADMIN_UNREACHABLE: spec(
    'SAGAMESH_ERR_ADMIN_UNREACHABLE',
    'the admin API cannot be reached',
    503,
    GrpcStatus.UNAVAILABLE,
    true,
  ),
  CLI_USAGE: spec(
    'SAGAMESH_ERR_CLI_USAGE',
    'the command line is invalid',
    400,
    GrpcStatus.INVALID_ARGUMENT,
    false,
  ),
  SAGA_NOT_FOUND: spec('SAGAMESH_ERR_SAGA_NOT_FOUND', 'no such saga', 404, GrpcStatus.NOT_FOUND, false),
  SAGA_NOT_RUNNING: spec(
    'SAGAMESH_ERR_SAGA_NOT_RUNNING',
    'the saga is not running in this instance',
    409,
    GrpcStatus.FAILED_PRECONDITION,
    false,
  ),
  SAGA_NOT_UNDOABLE: spec(
    'SAGAMESH_ERR_SAGA_NOT_UNDOABLE',
    'only a saga that succeeded can be undone',
    409,
    GrpcStatus.FAILED_PRECONDITION,
    false,
  ),
  SAGA_UNDONE: spec(
    'SAGAMESH_ERR_SAGA_UNDONE',
    'the saga succeeded and was then undone on request (spec.undo)',
    409,
    GrpcStatus.ABORTED,
    false,
  ),
  SAGA_NOT_STUCK: spec(
    'SAGAMESH_ERR_SAGA_NOT_STUCK',
    'only a stuck saga can be retried',
    409,
    GrpcStatus.FAILED_PRECONDITION,
    false,
  ),
  DEFINITION_NOT_FOUND: spec(
    'SAGAMESH_ERR_DEFINITION_NOT_FOUND',
    'no such saga definition (or version)',
    404,
    GrpcStatus.NOT_FOUND,
    false,
  ),
  RELOAD_REJECTED: spec(
    'SAGAMESH_ERR_RELOAD_REJECTED',
    'a changed set of saga definitions was rejected; the last good set stays in force',
    500,
    GrpcStatus.FAILED_PRECONDITION,
    false,
  ),

  // --- the ext_proc stream and the process
  PROTOCOL: spec(
    'SAGAMESH_ERR_PROTOCOL',
    'unexpected ext_proc message for the stream phase',
    500,
    GrpcStatus.FAILED_PRECONDITION,
    false,
  ),
  INTERNAL: spec('SAGAMESH_ERR_INTERNAL', 'internal error', 500, GrpcStatus.INTERNAL, true),
});

export type ErrorName = keyof typeof ERRORS;

/** An error that carries its registry entry; `detail` says what exactly went wrong. */
export class SagameshError extends Error {
  /** The registry entry. Not enumerable: it is frozen, and log serializers walk (and tag) what they see. */
  declare readonly spec: ErrorSpec;
  readonly code: ErrorSpec['code'];
  readonly details: readonly unknown[];

  constructor(spec: ErrorSpec, detail?: string, details: readonly unknown[] = [], options?: ErrorOptions) {
    super(detail ? `${spec.message}: ${detail}` : spec.message, options);
    this.name = 'SagameshError';
    Object.defineProperty(this, 'spec', { value: spec, enumerable: false });
    this.code = spec.code;
    this.details = details;
  }

  toJSON(): { code: string; message: string; details?: readonly unknown[] } {
    return this.details.length > 0
      ? { code: this.code, message: this.message, details: this.details }
      : { code: this.code, message: this.message };
  }
}

export function isSagameshError(err: unknown): err is SagameshError {
  return err instanceof SagameshError;
}

/** Wraps anything thrown into a SagameshError so callers always have a code. */
export function toSagameshError(err: unknown): SagameshError {
  if (isSagameshError(err)) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new SagameshError(ERRORS.INTERNAL, message, [], { cause: err });
}
