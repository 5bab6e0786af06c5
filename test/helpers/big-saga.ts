/**
 * A valid saga file of about `bytes` bytes (never more) holding `expressions` distinct expressions
 * (a multiple of 100), each long: what costs most to check and compile. 100 steps in a chain, each
 * with a body of templates. Past the size limits, a file that would load but for them.
 */
export function bigSaga(name: string, bytes: number, expressions: number): string {
  const head = `apiVersion: sagamesh.dev/v1alpha1
kind: Saga
metadata: { name: ${name} }
spec:
  match: { method: POST, path: /${name} }
  steps:
`;
  const steps = 100;
  const keys = Math.max(1, Math.floor(expressions / steps));
  const key = (s: number, k: number, pad: number): string =>
    `            k${k}: "\${request.body.guest & '${'x'.repeat(pad)}' & $string(request.body.n + ${s * keys + k})}"\n`;
  const step = (s: number, pad: number): string =>
    `    - name: s${s}\n` +
    (s > 0 ? `      dependsOn: [s${s - 1}]\n` : '') +
    `      action:\n        request:\n          method: POST\n          url: http://hotel/bookings\n          body:\n` +
    Array.from({ length: keys }, (_, k) => key(s, k, pad)).join('');
  // Sized on the longest step (the last), so the file stays within `bytes`.
  const unpadded = step(steps - 1, 0).length;
  const pad = Math.max(0, Math.floor(((bytes - head.length) / steps - unpadded) / keys));
  return head + Array.from({ length: steps }, (_, s) => step(s, pad)).join('');
}
