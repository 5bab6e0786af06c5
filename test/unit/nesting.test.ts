import { nestingOf } from '../../src/extproc/nesting';
import { SagameshError } from '../../src/errors';

describe('nestingOf (a parent saga step call)', () => {
  it('reads the budget and the parent link a step call carries', () => {
    expect(
      nestingOf({
        'x-sagamesh-budget-ms': '2500',
        'x-sagamesh-saga-id': '7d7e2f0a-4a8e-4bb7-9a39-0c0f1b1f6f0e',
        'x-sagamesh-step': 'trip',
      }),
    ).toEqual({
      budgetMs: 2500,
      parent: { sagaId: '7d7e2f0a-4a8e-4bb7-9a39-0c0f1b1f6f0e', step: 'trip' },
    });
  });

  it('is empty for an ordinary request', () => {
    expect(nestingOf({ 'content-type': 'application/json' })).toEqual({});
  });

  it.each(['0', '-1', '1.5', 'abc', '', '86400001', '1e3', '99999999999'])(
    'refuses the budget %j with a coded 400',
    (value) => {
      let caught: unknown;
      try {
        nestingOf({ 'x-sagamesh-budget-ms': value });
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(SagameshError);
      expect((caught as SagameshError).code).toBe('SAGAMESH_ERR_BUDGET_INVALID');
      expect((caught as SagameshError).spec.httpStatus).toBe(400);
    },
  );

  it('records no parent from half a link or from values sagamesh never writes', () => {
    expect(nestingOf({ 'x-sagamesh-saga-id': 'abc' })).toEqual({});
    expect(nestingOf({ 'x-sagamesh-step': 'trip' })).toEqual({});
    expect(nestingOf({ 'x-sagamesh-saga-id': 'a b', 'x-sagamesh-step': 'trip' })).toEqual({});
    expect(nestingOf({ 'x-sagamesh-saga-id': 'a'.repeat(129), 'x-sagamesh-step': 'trip' })).toEqual({});
  });
});
