import type { ProtoStruct, StructValue } from './messages';

/** JSON → google.protobuf.Struct in proto-loader's shape (used for Envoy dynamic metadata). */
export function toStructValue(value: unknown): StructValue {
  if (value === null || value === undefined) return { null_value: 'NULL_VALUE' };
  if (typeof value === 'number') return { number_value: value };
  if (typeof value === 'string') return { string_value: value };
  if (typeof value === 'boolean') return { bool_value: value };
  if (Array.isArray(value)) return { list_value: { values: value.map(toStructValue) } };
  if (typeof value === 'object') return { struct_value: toStruct(value as Record<string, unknown>) };
  return { string_value: String(value) };
}

export function toStruct(object: Readonly<Record<string, unknown>>): ProtoStruct {
  const fields: Record<string, StructValue> = {};
  for (const [k, v] of Object.entries(object)) if (v !== undefined) fields[k] = toStructValue(v);
  return { fields };
}
