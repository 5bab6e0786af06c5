import type {
  CallDefinition,
  SagaDefinition,
  StepDefinition,
  Template,
  TemplateScope,
  UrlTemplate,
} from '../../src/definition/definition';
import { NO_REQUEST_READS } from '../../src/definition/request-reads';

/** Hand-built definitions for unit tests that isolate the machine from the loader. */
export function constant(value: unknown): Template {
  return {
    render: () => Promise.resolve(value),
    stepRefs: [],
    readsBody: false,
    requestReads: NO_REQUEST_READS,
  };
}

export function url(origin: string, path: string, ownRef?: string): UrlTemplate {
  return {
    origin,
    stepRefs: ownRef ? [ownRef] : [],
    readsBody: false,
    requestReads: NO_REQUEST_READS,
    renderPath: (scope: TemplateScope) => {
      if (!ownRef) return Promise.resolve(path);
      const body = scope.steps[ownRef]?.response.body as { id?: string } | undefined;
      return Promise.resolve(`${path}/${body?.id ?? 'missing'}`);
    },
  };
}

export function call(
  method: string,
  origin: string,
  path: string,
  over: Partial<CallDefinition> = {},
  ownRef?: string,
): CallDefinition {
  return {
    request: { method, url: url(origin, path, ownRef), headers: {}, body: constant({ x: 1 }) },
    timeoutMs: 1000,
    retry: { attempts: 3, backoffMs: 100, maxBackoffMs: 1000 },
    success: [200, 201],
    ...over,
  };
}

/** A step; `over` replaces its parts, and `{ compensation: undefined }` leaves its compensation out. */
export function step(
  name: string,
  dependsOn: string[] = [],
  over: { [K in keyof StepDefinition]?: StepDefinition[K] | undefined } = {},
): StepDefinition {
  const { compensation, ...rest } = over;
  const base: StepDefinition = {
    name,
    dependsOn,
    action: call('POST', `http://${name}`, '/bookings'),
    compensation: call(
      'DELETE',
      `http://${name}`,
      '/bookings',
      { retry: { attempts: 3, backoffMs: 100, maxBackoffMs: 1000 } },
      name,
    ),
    ...(Object.fromEntries(
      Object.entries(rest).filter(([, v]) => v !== undefined),
    ) as Partial<StepDefinition>),
  };
  if (!('compensation' in over)) return base;
  const { compensation: replaced, ...withoutCompensation } = base;
  return compensation === undefined ? withoutCompensation : { ...withoutCompensation, compensation };
}

export function definition(steps: StepDefinition[], over: Partial<SagaDefinition> = {}): SagaDefinition {
  return {
    name: 'test-saga',
    file: 'test.yaml',
    version: 'v1',
    source: '',
    match: { method: 'POST', path: '/test' },
    deadlineMs: 10_000,
    respond: 'aggregate',
    input: { json: false },
    requestReads: NO_REQUEST_READS,
    steps,
    response: {
      success: { status: 201, headers: {}, body: constant({ ok: true }) },
      failure: { status: 409 },
    },
    ...over,
  };
}
