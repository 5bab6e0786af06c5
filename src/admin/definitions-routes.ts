import { ERRORS, SagameshError } from '../errors';
import type { SagaDefinition } from '../definition/definition';
import type { DefinitionSet } from '../definition/definition-set';
import { sagaChart, toDot, toMermaid } from '../runtime/graph';
import type { DefinitionCatalog } from './definition-catalog';
import type { Route } from './http';

/** The definitions in force, and any definition's state chart (of the version a saga ran with, too). */

export interface DefinitionsRouteDeps {
  readonly definitions: () => DefinitionSet;
  readonly catalog: DefinitionCatalog;
}

export function describeDefinition(d: SagaDefinition): Record<string, unknown> {
  return {
    name: d.name,
    version: d.version,
    file: d.file,
    match: d.match,
    respond: d.respond,
    deadlineMs: d.deadlineMs,
    steps: d.steps.map((s) => ({
      name: s.name,
      dependsOn: s.dependsOn,
      compensation: Boolean(s.compensation),
    })),
  };
}

const FORMATS = ['mermaid', 'dot', 'json'] as const;

export function definitionsRoutes(deps: DefinitionsRouteDeps): Route[] {
  const find = async (name: string, version: string | null): Promise<SagaDefinition> => {
    const definition = await deps.catalog.find(name, version ?? undefined);
    if (!definition) {
      throw new SagameshError(ERRORS.DEFINITION_NOT_FOUND, version ? `${name}@${version}` : name);
    }
    return definition;
  };
  return [
    {
      method: 'GET',
      path: '/definitions',
      handler: () =>
        Promise.resolve({
          status: 200,
          json: { definitions: deps.definitions().list().map(describeDefinition) },
        }),
    },
    {
      method: 'GET',
      path: '/definitions/:name',
      handler: async (req) => {
        const definition = await find(req.params['name'] ?? '', req.query.get('version'));
        return { status: 200, json: { definition: describeDefinition(definition) } };
      },
    },
    {
      method: 'GET',
      path: '/definitions/:name/graph',
      handler: async (req) => {
        const format = req.query.get('format') ?? 'mermaid';
        if (!FORMATS.includes(format as (typeof FORMATS)[number])) {
          throw new SagameshError(
            ERRORS.ADMIN_BAD_REQUEST,
            `format=${format}: must be ${FORMATS.join(', ')}`,
          );
        }
        const chart = sagaChart(await find(req.params['name'] ?? '', req.query.get('version')));
        if (format === 'json') return { status: 200, json: { chart } };
        const text = format === 'dot' ? toDot(chart) : toMermaid(chart);
        return { status: 200, text, contentType: 'text/plain; charset=utf-8' };
      },
    },
  ];
}
