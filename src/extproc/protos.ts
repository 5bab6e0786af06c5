import path from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

/**
 * Envoy's ext_proc API, loaded at run time from the protos @grpc/grpc-js-xds ships under deps/
 * (data-plane-api of 2024-07): nothing is copied into this repository.
 */
const depsDir = path.join(path.dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps');
export const ENVOY_PROTO_INCLUDE_DIRS = ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) =>
  path.join(depsDir, d),
);

export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  oneofs: true,
  longs: String,
  enums: String,
  defaults: false,
  includeDirs: ENVOY_PROTO_INCLUDE_DIRS,
};

export const EXT_PROC_SERVICE_NAME = 'envoy.service.ext_proc.v3.ExternalProcessor';

let cached: grpc.ServiceDefinition | undefined;

export function externalProcessorService(): grpc.ServiceDefinition {
  if (cached) return cached;
  const definition = protoLoader.loadSync(
    'envoy/service/ext_proc/v3/external_processor.proto',
    LOADER_OPTIONS,
  );
  const service = definition[EXT_PROC_SERVICE_NAME];
  if (!service || !('Process' in service))
    throw new Error(`${EXT_PROC_SERVICE_NAME} not found in Envoy protos`);
  cached = service;
  return cached;
}
