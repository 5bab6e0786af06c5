import type { RequestTemplate, ResponseDefinition, Template, TemplateScope } from './definition';

export interface RenderedRequest {
  readonly method: string;
  readonly origin: string;
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body?: unknown;
}

/** Header values render to strings; a header whose expression yields nothing is left out. */
export async function renderHeaders(
  headers: Readonly<Record<string, Template>>,
  scope: TemplateScope,
): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const [name, template] of Object.entries(headers)) {
    const value = await template.render(scope);
    if (value === undefined || value === null) continue;
    out[name] = typeof value === 'string' ? value : JSON.stringify(value);
  }
  return out;
}

/** Builds a step request from its template. Throws SagameshError(STEP_TEMPLATE) on bad data. */
export async function renderRequest(
  template: RequestTemplate,
  scope: TemplateScope,
): Promise<RenderedRequest> {
  const [path, headers, body] = await Promise.all([
    template.url.renderPath(scope),
    renderHeaders(template.headers, scope),
    template.body?.render(scope),
  ]);
  return {
    method: template.method,
    origin: template.url.origin,
    path,
    headers,
    ...(body !== undefined ? { body } : {}),
  };
}

export async function renderResponse(
  definition: ResponseDefinition,
  scope: TemplateScope,
): Promise<{ status: number; headers: Record<string, string>; body?: unknown }> {
  const [headers, body] = await Promise.all([
    renderHeaders(definition.headers, scope),
    definition.body?.render(scope),
  ]);
  return { status: definition.status, headers, ...(body !== undefined ? { body } : {}) };
}
