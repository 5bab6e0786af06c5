/**
 * How large saga definitions may be. Checking and compiling a definition costs time and memory in
 * proportion to its size (a 10 MB file took `validate` 52 s and 2.7 GB; 2,000 steps 4.7 s, as the
 * step graph is quadratic), so the sizes are bounded before the costly part: a file's size before
 * it is read, the step count before the graph is built. A ConfigMap holds at most 1 MiB in all.
 */
export const DEFINITION_LIMITS = Object.freeze({
  /** Bytes of one saga file. */
  fileBytes: 256 * 1024,
  /** Bytes of all saga files of a directory together. */
  directoryBytes: 1024 * 1024,
  /** Steps of one saga. */
  steps: 100,
  /**
   * Distinct `${…}` expressions in the saga files of a directory together. Each costs ~65 µs or
   * more to compile and ~16 KB of heap while loaded (JSONata builds a parser and an environment per
   * expression), more for long ones: 1,610 expressions of ~2.5 KB in 1 MiB held 60 MB.
   */
  expressions: 2_000,
});
