import type { RequestReads } from './request-reads';

/**
 * The validated, normalised form of a saga definition (sagas/*.yaml, apiVersion
 * sagamesh.dev/v1alpha1). Only the loader (saga/loader.ts) creates these; everything downstream —
 * the matcher, the machine builder, the step caller — trusts them. Durations are milliseconds.
 */

export const API_VERSION = 'sagamesh.dev/v1alpha1';

/** What expressions see. Values keep their JSON types. */
export interface TemplateScope {
  readonly request: {
    readonly method: string;
    readonly path: string;
    readonly query: Readonly<Record<string, string>>;
    readonly headers: Readonly<Record<string, string>>;
    readonly body: unknown;
  };
  readonly steps: Readonly<Record<string, { readonly response: StepResponse }>>;
  readonly saga: { readonly id: string; readonly name: string };
}

export interface StepResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: unknown;
}

/**
 * A compiled value: any JSON value whose strings may hold `${ <JSONata> }` expressions. A string
 * that is exactly one expression yields the expression's value with its JSON type; a string mixing
 * text and expressions yields a string. An expression that yields nothing (undefined) drops the
 * object key or array item it stands for. Render errors are SagameshError(STEP_TEMPLATE).
 */
export interface Template {
  render(scope: TemplateScope): Promise<unknown>;
  /** Names of the steps whose responses the template reads (`steps.<name>`). */
  readonly stepRefs: readonly string[];
  /** True when the template reads the request body. */
  readonly readsBody: boolean;
  /** What of the request (beyond method and path) it reads. */
  readonly requestReads: RequestReads;
}

/**
 * A step URL: scheme, host and port are fixed by the definition (never from data); expressions
 * may appear in path and query only, and their values are percent-encoded.
 */
export interface UrlTemplate {
  /** e.g. `http://hotel` — the authority Envoy's egress listener routes on. */
  readonly origin: string;
  /** Renders path + query, e.g. `/bookings/b%2F1?x=1`. Undefined values are an error. */
  renderPath(scope: TemplateScope): Promise<string>;
  readonly stepRefs: readonly string[];
  readonly readsBody: boolean;
  readonly requestReads: RequestReads;
}

export interface RetryPolicy {
  /** Total attempts including the first (1 = no retry). */
  readonly attempts: number;
  readonly backoffMs: number;
  readonly maxBackoffMs: number;
}

export interface RequestTemplate {
  readonly method: string;
  readonly url: UrlTemplate;
  readonly headers: Readonly<Record<string, Template>>;
  readonly body?: Template;
}

export interface CallDefinition {
  readonly request: RequestTemplate;
  readonly timeoutMs: number;
  readonly retry: RetryPolicy;
  /** Statuses that count as success. For compensations 404 always counts as done too. */
  readonly success: readonly number[];
}

export interface StepDefinition {
  readonly name: string;
  readonly dependsOn: readonly string[];
  readonly action: CallDefinition;
  /** Absent when the step has nothing to undo. */
  readonly compensation?: CallDefinition;
}

export interface ResponseDefinition {
  readonly status: number;
  readonly headers: Readonly<Record<string, Template>>;
  readonly body?: Template;
}

export interface SagaDefinition {
  readonly name: string;
  /** The file it came from, for messages. */
  readonly file: string;
  /** Content hash of the file (12 hex chars): the definition version a saga ran with. */
  readonly version: string;
  /** The file's text: the saga log keeps it per version so recovery runs the exact version. */
  readonly source: string;
  readonly match: { readonly method: string; readonly path: string };
  /**
   * How a run that succeeded is undone (`spec.undo`): a request to this route, whose path holds
   * the saga's id in the `{sagaId}` segment, runs its compensations (docs/nested-sagas.md).
   */
  readonly undo?: { readonly match: { readonly method: string; readonly path: string } };
  readonly deadlineMs: number;
  readonly respond: 'aggregate' | 'upstream';
  readonly input: {
    /** The request body must be a JSON document (a template reads it, or a schema is given). */
    readonly json: boolean;
    /** Validates the parsed body; returns problems as `<json pointer>: <message>`, empty if valid. */
    readonly validate?: (body: unknown) => readonly string[];
  };
  /**
   * What its templates read of the request besides method and path: all a saga keeps of its
   * request, for its run and in its `saga.started` record (extproc/saga-request.ts).
   */
  readonly requestReads: RequestReads;
  /** In dependency order: every step comes after the steps it depends on. */
  readonly steps: readonly StepDefinition[];
  readonly response: {
    readonly success: ResponseDefinition;
    readonly failure: { readonly status: number };
  };
  /** Pivot mode only: what is added to the original request before it continues upstream. */
  readonly upstream?: {
    readonly headers: Readonly<Record<string, Template>>;
    readonly body?: Template;
  };
}
