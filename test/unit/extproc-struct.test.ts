import { Struct } from 'google-protobuf/google/protobuf/struct_pb';
import { externalProcessorService } from '../../src/extproc/protos';
import { dynamicMetadata } from '../../src/extproc/answers';
import { toStruct } from '../../src/extproc/struct';

/**
 * The dynamic metadata sagamesh returns must survive proto-loader's encoding. google-protobuf's
 * own Struct decodes the bytes as the reference: what Envoy receives is what we meant.
 */
describe('toStruct', () => {
  it('encodes JSON values so that google-protobuf decodes them back unchanged', () => {
    const value = {
      s: 'x',
      n: 1.5,
      b: true,
      z: null,
      list: [1, 'a', { k: false }],
      nested: { deep: { v: 'w' } },
    };
    const process = externalProcessorService()['Process'];
    if (!process) throw new Error('no Process method');
    // ProcessingResponse field 8 is the Struct: encode a whole response and cut the Struct out.
    const bytes = process.responseSerialize({
      request_body: { response: {} },
      dynamic_metadata: toStruct(value),
    });
    const decoded = process.responseDeserialize(bytes) as { dynamic_metadata: unknown };
    expect(decoded.dynamic_metadata).toBeDefined();
    const structBytes = extractField(bytes, 8);
    expect(Struct.deserializeBinary(structBytes).toJavaScript()).toEqual(value);
  });

  it('puts saga id, saga and outcome under the sagamesh namespace', () => {
    const process = externalProcessorService()['Process'];
    if (!process) throw new Error('no Process method');
    const bytes = process.responseSerialize({
      request_body: { response: {} },
      ...dynamicMetadata({ sagaId: 'abc', saga: 'book-trip', outcome: 'succeeded' }),
    });
    expect(Struct.deserializeBinary(extractField(bytes, 8)).toJavaScript()).toEqual({
      sagamesh: { saga_id: 'abc', saga: 'book-trip', outcome: 'succeeded' },
    });
  });
});

/** The bytes of a length-delimited top-level field (enough protobuf wire format for this test). */
function extractField(buf: Buffer, field: number): Uint8Array {
  let i = 0;
  const varint = (): number => {
    let result = 0;
    let shift = 0;
    for (;;) {
      const byte = buf[i++] ?? 0;
      result += (byte & 0x7f) * 2 ** shift;
      if (byte < 0x80) return result;
      shift += 7;
    }
  };
  while (i < buf.length) {
    const key = varint();
    const wire = key & 7;
    if (wire !== 2) throw new Error(`unexpected wire type ${wire}`);
    const len = varint();
    if (key >>> 3 === field) return buf.subarray(i, i + len);
    i += len;
  }
  throw new Error(`field ${field} not found`);
}
