import type { Stack } from '../../demo/stack';

/** What the durability tests need to drive sagas through Envoy and watch the processes. */

export interface Answer {
  status: number;
  headers: Headers;
  text: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- assertions walk arbitrary JSON
  body: any;
}

/** POSTs JSON to the stack's ingress (or another base URL, e.g. an Istio-model inbound listener). */
export async function postJson(
  target: Stack | string,
  pathname: string,
  body: unknown,
  headers: Record<string, string> = {},
  signal?: AbortSignal,
): Promise<Answer> {
  const base = typeof target === 'string' ? target : target.ingressUrl;
  const res = await fetch(`${base}${pathname}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    ...(signal ? { signal } : {}),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, headers: res.headers, text, body: parsed };
}

export const trip = (over: Record<string, unknown> = {}): Record<string, unknown> => ({
  guest: 'Ada',
  hotel: { city: 'Lisbon', nights: 2 },
  flight: { from: 'BER', to: 'LIS' },
  car: { class: 'compact' },
  ...over,
});

/** Polls `cond` every `intervalMs` until it holds; fails after `timeoutMs` saying what it waited for. */
export async function until(
  what: string,
  cond: () => boolean | Promise<boolean>,
  { timeoutMs = 10_000, intervalMs = 20 } = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** sagamesh's JSON log lines (pino), parsed; other lines are skipped. */
export function logEntries(lines: readonly string[]): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const line of lines) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // a partial line: skip
    }
  }
  return out;
}

/** The log entries of the current sagamesh process with message `msg` (and the given fields). */
export function logged(
  stack: Stack,
  msg: string,
  fields: Record<string, unknown> = {},
): Record<string, unknown>[] {
  return logEntries(stack.sagamesh.lines()).filter(
    (e) => e['msg'] === msg && Object.entries(fields).every(([k, v]) => e[k] === v),
  );
}
