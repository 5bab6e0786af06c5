/**
 * What a cluster adds to the applied manifests before a translator sees them, written out here
 * because no cluster runs: the apiserver's ClusterIP for each Service, the workload controllers'
 * Pods (one per Deployment replica, StatefulSet members by ordinal) with the kubelet's pod IP and
 * readiness, and the endpoint controller's EndpointSlices (each Service's selector over those Pods,
 * named target ports resolved against the containers). Istio's sidecar injector adds labels to the
 * pods it injects (`security.istio.io/tlsMode: istio`, the canonical service labels): only pods
 * whose sidecar this test runs get them, so Istio's auto mTLS sends plaintext to the others, which
 * run here without a sidecar to terminate it.
 */
import type { K8sObject, PodTemplate } from './k8s';
import { specOf } from './k8s';

interface ServicePort {
  name?: string;
  port: number;
  targetPort?: number | string;
  protocol?: string;
  appProtocol?: string;
}

export interface ClusterState {
  /** The manifests' objects plus Pods and EndpointSlices, Services with their ClusterIP. */
  readonly objects: K8sObject[];
  /** Service name → its ClusterIP (none for headless Services). */
  readonly clusterIPs: Readonly<Record<string, string>>;
  /** Pod name → pod IP. */
  readonly podIPs: Readonly<Record<string, string>>;
  /** Pod IP → the workload (Deployment/StatefulSet name) it belongs to. */
  readonly workloadOfIP: Readonly<Record<string, string>>;
}

function clone<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

/** Istio's injector's labels for a pod it injects (pkg/kube/inject: tlsMode and canonical names). */
function injectedLabels(workload: string, labels: Record<string, string>): Record<string, string> {
  return {
    'security.istio.io/tlsMode': 'istio',
    'service.istio.io/canonical-name': labels['app'] ?? workload,
    'service.istio.io/canonical-revision': labels['version'] ?? 'latest',
  };
}

/**
 * The cluster's view of `objects` (the rendered manifests). `sidecars` names the workloads whose
 * pods get Istio's injected labels (those whose sidecar is translated and run here).
 */
export function clusterState(objects: readonly K8sObject[], sidecars: readonly string[]): ClusterState {
  const out: K8sObject[] = [];
  const clusterIPs: Record<string, string> = {};
  const podIPs: Record<string, string> = {};
  const workloadOfIP: Record<string, string> = {};
  const pods: (K8sObject & { spec: PodTemplate['spec'] })[] = [];
  let serviceIndex = 10;
  let podIndex = 10;

  for (const original of objects) {
    const o = clone(original);
    out.push(o);
    if (o.kind === 'Service') {
      const spec = specOf<{ clusterIP?: string }>(o);
      if (spec.clusterIP !== 'None') spec.clusterIP = `10.96.0.${serviceIndex++}`;
      if (spec.clusterIP !== 'None') clusterIPs[o.metadata.name] = spec.clusterIP ?? '';
    }
    if (o.kind !== 'Deployment' && o.kind !== 'StatefulSet') continue;
    const spec = specOf<{ replicas?: number; template: PodTemplate }>(o);
    for (let i = 0; i < (spec.replicas ?? 1); i++) {
      const name = o.kind === 'StatefulSet' ? `${o.metadata.name}-${i}` : `${o.metadata.name}-${i}`;
      const ip = `10.244.0.${podIndex++}`;
      const labels = { ...(spec.template.metadata.labels ?? {}) };
      if (sidecars.includes(o.metadata.name)) Object.assign(labels, injectedLabels(o.metadata.name, labels));
      const pod = {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {
          name,
          namespace: o.metadata.namespace,
          labels,
          annotations: { ...(spec.template.metadata.annotations ?? {}) },
        },
        spec: { ...clone(spec.template.spec), nodeName: 'node-0' },
        status: {
          phase: 'Running',
          podIP: ip,
          podIPs: [{ ip }],
          hostIP: '172.18.0.2',
          conditions: [{ type: 'Ready', status: 'True' }],
        },
      };
      pods.push(pod as unknown as K8sObject & { spec: PodTemplate['spec'] });
      out.push(pod as unknown as K8sObject);
      podIPs[name] = ip;
      workloadOfIP[ip] = o.metadata.name;
    }
  }

  for (const svc of objects.filter((o) => o.kind === 'Service')) {
    const spec = specOf<{ selector?: Record<string, string>; ports: ServicePort[] }>(svc);
    if (!spec.selector) continue;
    const selector = spec.selector;
    const selected = pods.filter(
      (p) =>
        p.metadata.namespace === svc.metadata.namespace &&
        Object.entries(selector).every(([k, v]) => p.metadata.labels?.[k] === v),
    );
    const containerPort = (pod: (typeof pods)[number], target: number | string): number => {
      if (typeof target === 'number') return target;
      for (const c of pod.spec.containers)
        for (const p of (c as { ports?: { name?: string; containerPort: number }[] }).ports ?? [])
          if (p.name === target) return p.containerPort;
      throw new Error(`Service ${svc.metadata.name}: no container port named ${target}`);
    };
    const first = selected[0];
    out.push({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: {
        name: `${svc.metadata.name}-0`,
        namespace: svc.metadata.namespace,
        labels: { 'kubernetes.io/service-name': svc.metadata.name },
      },
      addressType: 'IPv4',
      endpoints: selected.map((p) => ({
        addresses: [podIPs[p.metadata.name]],
        conditions: { ready: true, serving: true, terminating: false },
        nodeName: 'node-0',
        targetRef: { kind: 'Pod', name: p.metadata.name, namespace: p.metadata.namespace },
      })),
      ports: spec.ports.map((p) => ({
        name: p.name ?? '',
        port: first ? containerPort(first, p.targetPort ?? p.port) : p.port,
        protocol: p.protocol ?? 'TCP',
        ...(p.appProtocol ? { appProtocol: p.appProtocol } : {}),
      })),
    } as unknown as K8sObject);
  }
  return { objects: out, clusterIPs, podIPs, workloadOfIP };
}
