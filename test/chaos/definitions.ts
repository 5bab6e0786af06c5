import YAML from 'yaml';
import type { DefinitionModel, Host, StepModel, UndoStyle } from './model';
import { HOSTS } from './model';
import type { Rng } from './prng';

/**
 * Random saga definitions: DAGs of 1–9 steps (each step depends on a random subset of the steps
 * before it, so there is never a cycle), random timeouts and retry budgets, both `respond` modes.
 * Every step calls one of the participant hosts envoy/envoy.yaml routes (hotel, flight, car,
 * trips) and has a compensation: by the id in the action's answer (which makes sagamesh replay an
 * in-doubt action to learn it) or by the saga id and step name (the participant derives the key).
 *
 * Every call carries what the participants need to record it for the checker, as header
 * templates: `x-chaos-def` (the definition), `x-chaos-ref` (the client request) and
 * `x-chaos-faults` (this call's fault script, read from the request body).
 *
 * Compensation budgets are generous on purpose: a saga that ends `stuck` is a violation, and a
 * budget that the planned faults plus a process restart can exhaust would make it a planned one.
 */
export const CHAOS_PATH_PREFIX = '/chaos/';

/** Failure statuses the definitions answer with; 503 makes a failure look retryable to a naive client. */
const FAILURE_STATUSES = [409, 424, 503] as const;

export function generateDefinitions(rng: Rng, count: number): DefinitionModel[] {
  return Array.from({ length: count }, (_, i) => generateDefinition(rng.fork(`definition-${i}`), i));
}

function generateDefinition(rng: Rng, index: number): DefinitionModel {
  const name = `chaos-${index}`;
  const path = `${CHAOS_PATH_PREFIX}${index}`;
  const respond = rng.chance(0.25) ? 'upstream' : 'aggregate';
  const count = rng.int(1, 9);
  const steps: StepModel[] = [];
  for (let i = 1; i <= count; i++) {
    const earlier = steps.map((s) => s.name);
    steps.push({
      name: `s${i}`,
      host: rng.pick(HOSTS),
      dependsOn: earlier.filter(() => rng.chance(0.3)),
      timeoutMs: rng.pick([400, 600, 800, 1200, 2000]),
      attempts: rng.int(1, 4),
      undo: rng.chance(0.5) ? 'by-id' : 'by-key',
      undoTimeoutMs: rng.pick([600, 1000, 2000]),
      undoAttempts: rng.int(8, 10),
    });
  }
  const model = {
    name,
    path,
    respond,
    deadlineMs: rng.pick([4000, 6000, 8000, 10_000]),
    failureStatus: rng.pick(FAILURE_STATUSES),
    steps,
  } as const;
  return { ...model, yaml: renderYaml(rng, model) };
}

/** Calls' headers: what the participant records, and the fault script of this call. */
function chaosHeaders(definition: string, step: string, script: 'a' | 'u'): Record<string, string> {
  return {
    'x-chaos-def': definition,
    'x-chaos-ref': '${request.body.ref}',
    'x-chaos-faults': `\${request.body.f.${step}.${script}}`,
  };
}

function undoUrl(host: Host, step: string, style: UndoStyle): string {
  return style === 'by-id'
    ? `http://${host}/effects/\${steps.${step}.response.body.id}`
    : `http://${host}/sagas/\${saga.id}/steps/${step}`;
}

function renderYaml(rng: Rng, model: Omit<DefinitionModel, 'yaml'>): string {
  const steps = model.steps.map((s) => {
    const headers = chaosHeaders(model.name, s.name, 'a');
    // Sometimes an action reads a step it depends on (templates over recorded responses).
    const parent = s.dependsOn.length > 0 && rng.chance(0.3) ? rng.pick(s.dependsOn) : undefined;
    if (parent) headers['x-chaos-parent'] = `\${steps.${parent}.response.body.id}`;
    return {
      name: s.name,
      ...(s.dependsOn.length > 0 ? { dependsOn: [...s.dependsOn] } : {}),
      action: {
        request: {
          method: 'POST',
          url: `http://${s.host}/effects`,
          headers,
          body: { ref: '${request.body.ref}', step: s.name, saga: '${saga.id}' },
        },
        timeout: `${s.timeoutMs}ms`,
        retry: { attempts: s.attempts, backoff: `${rng.pick([20, 50, 100])}ms`, maxBackoff: '500ms' },
      },
      compensation: {
        request: {
          method: 'DELETE',
          url: undoUrl(s.host, s.name, s.undo),
          headers: chaosHeaders(model.name, s.name, 'u'),
        },
        timeout: `${s.undoTimeoutMs}ms`,
        retry: { attempts: s.undoAttempts, backoff: `${rng.pick([50, 100, 150])}ms`, maxBackoff: '2s' },
      },
    };
  });
  const shown = model.steps.slice(0, 3).map((s) => s.name);
  const spec: Record<string, unknown> = {
    match: { method: 'POST', path: model.path },
    deadline: `${model.deadlineMs}ms`,
    respond: model.respond,
    input: {
      schema: { type: 'object', required: ['ref'], properties: { ref: { type: 'string' } } },
    },
    steps,
  };
  if (model.respond === 'upstream') {
    spec['upstream'] = {
      headers: { 'x-chaos-ref': '${request.body.ref}', 'x-chaos-def': model.name },
      ...(rng.chance(0.5)
        ? {
            body: {
              ref: '${request.body.ref}',
              upstream: '${request.body.upstream}',
              ids: Object.fromEntries(shown.map((s) => [s, `\${steps.${s}.response.body.id}`])),
            },
          }
        : {}),
    };
    spec['response'] = { failure: { status: model.failureStatus } };
  } else {
    spec['response'] = {
      success: {
        status: rng.pick([200, 201]),
        body: {
          sagaId: '${saga.id}',
          ref: '${request.body.ref}',
          ids: Object.fromEntries(shown.map((s) => [s, `\${steps.${s}.response.body.id}`])),
        },
      },
      failure: { status: model.failureStatus },
    };
  }
  const doc = { apiVersion: 'sagamesh.dev/v1alpha1', kind: 'Saga', metadata: { name: model.name }, spec };
  return `# generated by the chaos run (test/chaos/definitions.ts)\n${YAML.stringify(doc, { lineWidth: 0 })}`;
}
