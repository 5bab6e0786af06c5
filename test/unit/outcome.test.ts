import { classifyResponse } from '../../src/engine/outcome';
import { readsResponseOf } from '../../src/definition/response-reads';
import { call, constant, definition, step } from '../helpers/fake-definition';

/** How an answer counts, for the one case that depends on who reads it: success with an unreadable body. */

const action = call('POST', 'http://hotel', '/bookings');
const garbled = { status: 201, headers: {}, body: '{"id":"h', unreadable: 'the body is not JSON: …' };

describe('classifyResponse', () => {
  it('counts a success whose body the saga reads but cannot as applied and in doubt, keeping no response', () => {
    expect(classifyResponse('action', action, garbled, 'hotel', true)).toEqual({
      outcome: 'retryable',
      applied: 'yes',
      error: {
        code: 'SAGAMESH_ERR_STEP_BAD_RESPONSE',
        message: 'hotel: participant answered 201, but the body is not JSON: …',
      },
    });
  });

  it('counts it as a success, with its text, when nothing reads it; so is an undo', () => {
    const kept = {
      outcome: 'success',
      applied: 'yes',
      response: { status: 201, headers: {}, body: '{"id":"h' },
    };
    expect(classifyResponse('action', action, garbled, 'hotel', false)).toEqual(kept);
    expect(classifyResponse('compensation', action, garbled, 'hotel', true)).toEqual(kept);
  });
});

describe('readsResponseOf', () => {
  it("sees reads in its own undo, a later step's request and the success response", () => {
    // fake-definition's compensations read their own step's response (the booking id).
    const def = definition([step('hotel'), step('car', ['hotel'], { compensation: undefined })]);
    expect(readsResponseOf(def, 'hotel')).toBe(true);
    expect(readsResponseOf(def, 'car')).toBe(false);
    const answered = definition([step('car', [], { compensation: undefined })], {
      response: {
        success: { status: 201, headers: {}, body: { ...constant({}), stepRefs: ['car'] } },
        failure: { status: 409 },
      },
    });
    expect(readsResponseOf(answered, 'car')).toBe(true);
  });
});
