import type { RequestTemplate, SagaDefinition, Template } from './definition';

/**
 * Whether the saga reads a step's response: its own compensation, a later step's request, the
 * success response or the upstream mutation names `steps.<step>`. Per step, not per field
 * (reading `.status` counts). Step requests must name the steps they read literally (the loader
 * checks it), so for them this is exact; a response or upstream template that reads `steps`
 * dynamically (`$lookup(steps, name)`) is not seen here.
 */
export function readsResponseOf(definition: SagaDefinition, step: string): boolean {
  const templates: { readonly stepRefs: readonly string[] }[] = [
    ...definition.steps.flatMap((s) => [
      ...requestTemplates(s.action.request),
      ...(s.compensation ? requestTemplates(s.compensation.request) : []),
    ]),
    ...Object.values(definition.response.success.headers),
    ...optional(definition.response.success.body),
    ...Object.values(definition.upstream?.headers ?? {}),
    ...optional(definition.upstream?.body),
  ];
  return templates.some((t) => t.stepRefs.includes(step));
}

function requestTemplates(request: RequestTemplate): { readonly stepRefs: readonly string[] }[] {
  return [request.url, ...Object.values(request.headers), ...optional(request.body)];
}

function optional(template: Template | undefined): Template[] {
  return template ? [template] : [];
}
