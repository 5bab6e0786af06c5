import type { SagaDefinition } from '../definition/definition';
import type { DefinitionSet } from '../definition/definition-set';

/**
 * Finds a definition by name and, optionally, version — the version a saga ran with may no longer
 * be in force after a reload. It looks in the set in force first, then asks `resolve` (the app's
 * lookup of older versions, which the saga log keeps).
 */
export interface CatalogOptions {
  readonly current: () => DefinitionSet;
  readonly resolve?: (version: string, name: string) => Promise<SagaDefinition | undefined>;
}

export class DefinitionCatalog {
  constructor(private readonly options: CatalogOptions) {}

  async find(name: string, version?: string): Promise<SagaDefinition | undefined> {
    const current = this.options.current().get(name);
    if (current && (version === undefined || current.version === version)) return current;
    if (version === undefined) return undefined;
    const older = await this.options.resolve?.(version, name);
    return older?.name === name ? older : undefined;
  }
}
