import fs from 'node:fs';
import path from 'node:path';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { ERRORS, SagameshError, toSagameshError } from '../../src/errors';
import { createLogger } from '../../src/logger';

/** docs/errors.md lists every code of the registry, with the same statuses, and nothing else. */
describe('error registry', () => {
  const doc = fs.readFileSync(path.join(__dirname, '..', '..', 'docs', 'errors.md'), 'utf8');
  const rows = new Map(
    [
      ...doc.matchAll(
        /^\|\s*`(SAGAMESH_ERR_[A-Z_]+)`\s*\|\s*(\d{3})\s*\|\s*([A-Z_]+)\s*\|\s*(yes|no)\s*\|/gm,
      ),
    ].map((m) => [m[1], { http: Number(m[2]), grpc: m[3], retryable: m[4] === 'yes' }]),
  );

  it.each(Object.values(ERRORS).map((s) => [s.code, s]))(
    '%s is documented with its statuses',
    (_code, spec) => {
      const row = rows.get(spec.code);
      expect(row).toBeDefined();
      expect(row).toEqual({
        http: spec.httpStatus,
        grpc: GrpcStatus[spec.grpcStatus],
        retryable: spec.retryable,
      });
    },
  );

  it('documents no code the registry lacks', () => {
    const codes = new Set(Object.values(ERRORS).map((s) => s.code));
    expect([...rows.keys()].filter((c) => !codes.has(c as never))).toEqual([]);
  });

  it('has unique codes', () => {
    const codes = Object.values(ERRORS).map((s) => s.code);
    expect(new Set(codes).size).toBe(codes.length);
  });

  it('logs through pino with its code (the frozen spec stays out of the serializer)', () => {
    const lines: string[] = [];
    const logger = createLogger({ level: 'info' }, { write: (line: string) => void lines.push(line) });
    const err = new SagameshError(ERRORS.PROTOCOL, 'x', [{ a: 1 }], {
      cause: new SagameshError(ERRORS.INTERNAL),
    });
    expect(() => logger.error({ err }, 'failed')).not.toThrow();
    expect(JSON.parse(lines[0] ?? '{}')).toMatchObject({
      err: { code: 'SAGAMESH_ERR_PROTOCOL', details: [{ a: 1 }] },
    });
    expect(err.spec.httpStatus).toBe(500);
  });

  it('wraps unknown throwables as INTERNAL and keeps coded ones', () => {
    const coded = new SagameshError(ERRORS.BODY_NOT_JSON, 'x');
    expect(toSagameshError(coded)).toBe(coded);
    expect(toSagameshError(new Error('boom')).code).toBe('SAGAMESH_ERR_INTERNAL');
    expect(coded.toJSON()).toEqual({
      code: 'SAGAMESH_ERR_BODY_NOT_JSON',
      message: 'request body must be a JSON document: x',
    });
  });
});
