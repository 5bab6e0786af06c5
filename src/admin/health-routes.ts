import type { Route } from './http';
import type { Metrics } from './metrics';
import type { Readiness } from './readiness';

/** Liveness, readiness and the Prometheus scrape endpoint. */
export function healthRoutes(deps: { readonly readiness: Readiness; readonly metrics: Metrics }): Route[] {
  return [
    {
      method: 'GET',
      path: '/healthz',
      // Alive is all it says: the event loop answers. Readiness says whether to send traffic.
      handler: () => Promise.resolve({ status: 200, json: { status: 'ok' } }),
    },
    {
      method: 'GET',
      path: '/readyz',
      handler: async () => {
        const report = await deps.readiness.check();
        return { status: report.ready ? 200 : 503, json: report };
      },
    },
    {
      method: 'GET',
      path: '/metrics',
      handler: async () => ({
        status: 200,
        text: await deps.metrics.render(),
        contentType: deps.metrics.contentType,
      }),
    },
  ];
}
