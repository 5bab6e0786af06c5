import type { ProtoStruct, StructValue } from './messages';

/**
 * JSON → google.protobuf.Struct in proto-loader's shape (used for Envoy dynamic metadata). The
 * well-known types are built into protobufjs with camelCase field names, which `keepCase` does not
 * change: snake_case names here would encode to an empty value.
 */
export function toStructValue(value: unknown): StructValue {
  if (value === null || value === undefined) return { nullValue: 'NULL_VALUE' };
  if (typeof value === 'number') return { numberValue: value };
  if (typeof value === 'string') return { stringValue: value };
  if (typeof value === 'boolean') return { boolValue: value };
  if (Array.isArray(value)) return { listValue: { values: value.map(toStructValue) } };
  if (typeof value === 'object') return { structValue: toStruct(value as Record<string, unknown>) };
  // bigint, symbol, function: not JSON; Envoy gets their string form.
  return { stringValue: typeof value === 'bigint' ? value.toString() : typeof value };
}

export function toStruct(object: Readonly<Record<string, unknown>>): ProtoStruct {
  const fields: Record<string, StructValue> = {};
  for (const [k, v] of Object.entries(object)) if (v !== undefined) fields[k] = toStructValue(v);
  return { fields };
}
