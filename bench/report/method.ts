import { QBOX_RATE, SATURATION_WORKERS } from '../cases';
import type { Results } from './results';

/** The "how it was measured" part of BENCHMARKS.md: what each system does per saga, and why. */
export function method(results: Results): string {
  return `## How it was measured

\`npm run bench\` (after \`bench/setup.sh\`, which installs the tools project-locally) starts everything
itself on loopback, in one run: the participants, one Envoy, every sagamesh variant, the direct
client, Redis, PostgreSQL and DTM with each store; it measures one system at a time, interleaving
the repetitions (run 1 of every case and system, then run 2, …), and stops everything at the end
(also on Ctrl-C or an error). Raw results: \`bench/results/latest.json\`.

**Load generator: [vegeta](https://github.com/tsenart/vegeta) ${results.machine.versions['vegeta'] ?? ''}** (Go, \`go install\`).
It does both loads the issue asks for with one tool and one latency accounting: open loop at a
fixed rate (\`-rate=R/1s\`: requests leave on schedule whether or not earlier ones have answered,
so queueing in a slow system shows up as latency instead of slowing the load down — no coordinated
omission) and closed loop (\`-rate=0 -workers=W -max-workers=W\`). It reads targets lazily from a
stream, which gives every DTM saga its own gid, and its report computes exact percentiles over
every request. wrk and hey are closed-loop only (wrk2 is not packaged), and autocannon would put
a Node.js load generator on the same two cores as the Node.js systems under test.

**Cases.** Qbox's flat topologies 1to4 and 1to9 (one coordinator, 4 or 9 participants), with the
participants answering at once and after 20 ms; at ${QBOX_RATE} sagas/s (Qbox's rate) and at
saturation (closed loop, ${SATURATION_WORKERS} concurrent clients). The failure mix makes every 10th
saga's last step refuse. The pass-through case compares the ingress listener with and without the
ext_proc filter on a route that matches no saga, on a route that opts out of the filter, and with
the filter answered by the smallest ext_proc server there is (bench/extproc-min, Go, answers at
once: what one exchange costs whatever the server). The memory case holds thousands of sagas open.

**The participants** (bench/participants/) are one Node.js process serving p1…p9 on their own
ports: the demo participant's booking contract (idempotent create keyed by \`idempotency-key\`,
cancel by id, 404 = nothing to undo) plus DTM's status contract on /dtm/action and
/dtm/compensate (200 success, 409 failure), one code path for both. Each payload says how long to
take (\`ms\`) and whether to refuse (\`fail\`).

**Envoy** (bench/envoy-config.ts) is one process built from envoy/envoy.yaml: one ingress listener
per sagamesh variant with the ext_proc filter exactly as checked in (only the cluster name
differs; bench/extproc-min gets one too), a copy without the filter for the pass-through
baseline, and the egress listener every
system's participant calls go through — by Host for sagamesh and direct (\`http://p1/…\`), by path
prefix \`/p1/…\` for DTM, which cannot set a Host header per branch. Access logs are off for all.

**What each system does per saga**

| system | per saga |
| --- | --- |
| direct | the client (bench/direct/main.ts, Node.js, undici Pool like sagamesh's step caller) sends every action at once through the egress, waits for all; if one refused, DELETEs the booked ones in parallel and answers 409. No coordinator, no log: the floor for latency, the ceiling for throughput |
| sagamesh | client → Envoy ingress → ext_proc stream → sagamesh matches \`bench/sagas/flat-1toN.yaml\`, appends \`saga.started\` to its log, runs every step in parallel through the egress (log records before each dispatch and after each outcome), compensates on failure, appends \`saga.finished\`, answers with an ImmediateResponse. The variants differ only in \`SAGAMESH_STORE\` (\`memory\`, \`sqlite:<file>\`, \`postgres://…\`, \`etcd://…\` on 3 members); log level \`info\` (the default), logs to a file |
| DTM | the client POSTs the saga to DTM's \`/api/dtmsvr/submit\` as a concurrent saga (all branches at once) with \`wait_result: true\`, so it answers when the saga is done; DTM stores it (BoltDB file or Redis), calls every branch's action through the egress, on a 409 calls the compensations, records each branch's outcome, answers 200 or 409. DTM's defaults otherwise (log level info, to a file) |
| serial | sagamesh (in-memory log) running \`bench/sagas/serial-1toN.yaml\`: the same steps chained with \`dependsOn\`, one after the other, as Qbox ran them |

Fairness notes: every system shares the same 2 cores with Envoy, the participants and the load
generator, so throughput figures are for this whole box, not for the coordinator alone. Redis and
PostgreSQL run with their packaged defaults. Before measuring, every system is warmed up (closed
loop, 8 clients, each topology).`;
}
