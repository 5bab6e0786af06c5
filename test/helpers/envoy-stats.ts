/**
 * Reading what Envoy and sagamesh count, and loading the ext_proc path with pass-through requests:
 * what the tests of ext_proc streams under load (extproc-streams, istio-translation) assert on.
 */

/** Counters from an admin endpoint (Envoy `/stats` or sagamesh `/metrics`), name → value. */
export async function counters(url: string, pattern: RegExp): Promise<Record<string, number>> {
  const text = await (await fetch(url)).text();
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const m = pattern.exec(line);
    if (m?.[1] !== undefined && m[2] !== undefined) out[m[1]] = Number(m[2]);
  }
  return out;
}

/** Envoy's counters for the ext_proc cluster and filter (every `cluster.<c>.` and `http.<p>.ext_proc.`). */
export async function extProcCounters(
  adminUrl: string,
  cluster: string,
  statPrefix: string,
): Promise<Record<string, number>> {
  const escape = (s: string) => s.replace(/[.|/]/g, (c) => `\\${c}`);
  const filter = `^(cluster\\.${escape(cluster)}|http\\.${escape(statPrefix)}\\.ext_proc)\\.`;
  const all = await counters(`${adminUrl}/stats?filter=${encodeURIComponent(filter)}`, /^(\S+): (\d+)$/);
  const pick = (name: string) => all[name] ?? 0;
  return {
    tx_reset: pick(`cluster.${cluster}.http2.tx_reset`),
    goaway: pick(`cluster.${cluster}.upstream_cx_close_notify`),
    retries: pick(`cluster.${cluster}.upstream_rq_retry`),
    streams_started: pick(`http.${statPrefix}.ext_proc.streams_started`),
    streams_failed: pick(`http.${statPrefix}.ext_proc.streams_failed`),
  };
}

/** `n` GETs on paths that match no saga, `concurrency` at a time; status → count. */
export async function passThrough(
  baseUrl: string,
  n: number,
  concurrency: number,
): Promise<Record<number, number>> {
  const statuses: Record<number, number> = {};
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      next++;
      const res = await fetch(`${baseUrl}/passthrough/${next}`);
      await res.arrayBuffer();
      statuses[res.status] = (statuses[res.status] ?? 0) + 1;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return statuses;
}
