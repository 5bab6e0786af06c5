/**
 * The Kubernetes manifests under deploy/kubernetes as the tests see them: rendered by the real
 * kustomize, checked by the real kubectl-validate (Kubernetes' own validation code, with the Istio,
 * Envoy Gateway and Gateway API CRDs), and read back as plain objects.
 *
 * The tools come from scripts/ci/install-k8s-tools.sh (.tools/bin, .tools/k8s-crds) or from PATH
 * and KUBECTL_VALIDATE_CRDS. A missing tool is a failure with the command that installs it, never
 * a skipped test.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';

export const ROOT = path.resolve(__dirname, '..', '..');
export const DEPLOY_DIR = path.join(ROOT, 'deploy', 'kubernetes');
const TOOLS = path.join(ROOT, '.tools');
const INSTALL_HINT = 'run `bash scripts/ci/install-k8s-tools.sh` (CI runs it from .ci/run)';

/** Kubernetes version of kubectl-validate's built-in schemas used for the native kinds. */
export const KUBERNETES_SCHEMA_VERSION = '1.30';

export function findTool(name: 'kustomize' | 'kubectl-validate'): string {
  const candidates = [
    path.join(TOOLS, 'bin', name),
    ...(process.env['PATH'] ?? '')
      .split(path.delimiter)
      .filter((dir) => dir !== '')
      .map((dir) => path.join(dir, name)),
  ];
  for (const file of candidates) {
    try {
      fs.accessSync(file, fs.constants.X_OK);
      if (fs.statSync(file).isFile()) return file;
    } catch {
      // not this one
    }
  }
  throw new Error(`${name} not found in .tools/bin or on PATH: ${INSTALL_HINT}`);
}

/** The directory of CRD YAML files kubectl-validate reads for the custom kinds. */
export function crdsDir(): string {
  const dir = process.env['KUBECTL_VALIDATE_CRDS'] ?? path.join(TOOLS, 'k8s-crds');
  const files = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)) : [];
  if (files.length === 0) throw new Error(`no CRD files in ${dir}: ${INSTALL_HINT}`);
  return dir;
}

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  spec?: unknown;
  data?: Record<string, string>;
}

/**
 * An object's spec in the shape a test reads it. A cast, not validation: the validation is
 * kubectl-validate's (validateObjects), which every rendered object passes first.
 */
export function specOf<T>(o: K8sObject): T {
  if (o.spec === undefined) throw new Error(`${o.kind} ${o.metadata.name} has no spec`);
  return o.spec as T;
}

export interface Probe {
  httpGet?: { path: string; port: number };
  tcpSocket?: { port: number };
}

export interface Container {
  name: string;
  image?: string;
  command?: string[];
  env?: { name: string; value?: string }[];
  ports?: { name?: string; containerPort: number }[];
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  startupProbe?: Probe;
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean; subPath?: string }[];
  securityContext?: Record<string, unknown>;
}

export interface PodTemplate {
  metadata: { labels?: Record<string, string>; annotations?: Record<string, string> };
  spec: {
    containers: Container[];
    volumes?: { name: string; configMap?: { name: string }; emptyDir?: Record<string, unknown> }[];
    terminationGracePeriodSeconds?: number;
  };
}

export function podTemplate(deployment: K8sObject): PodTemplate {
  return specOf<{ template: PodTemplate }>(deployment).template;
}

export interface Rendered {
  /** kustomize's output, as applied with `kubectl apply -k`. */
  readonly yaml: string;
  readonly objects: K8sObject[];
}

/** `kustomize build <deploy/kubernetes/<dir>>`. */
export function render(dir: string): Rendered {
  const yaml = execFileSync(findTool('kustomize'), ['build', path.join(DEPLOY_DIR, dir)], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const objects = YAML.parseAllDocuments(yaml).map((doc) => {
    if (doc.errors.length > 0) throw new Error(`kustomize output is not YAML: ${doc.errors[0]?.message}`);
    return doc.toJS() as K8sObject; // kubectl-validate checks the shape (validateObjects)
  });
  return { yaml, objects };
}

/** kubectl-validate on rendered YAML; `ok` and its whole output. Never talks to a cluster. */
export function validateObjects(yaml: string): { ok: boolean; output: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sagamesh-k8s-'));
  try {
    const file = path.join(dir, 'rendered.yaml');
    fs.writeFileSync(file, yaml);
    const result = spawnSync(
      findTool('kubectl-validate'),
      [file, '--version', KUBERNETES_SCHEMA_VERSION, '--local-crds', crdsDir()],
      // No kubeconfig: the schemas are the built-in ones and the local CRDs, whatever the machine.
      { encoding: 'utf8', env: { ...process.env, KUBECONFIG: path.join(dir, 'no-kubeconfig') } },
    );
    const output = `${result.stdout}${result.stderr}${result.error ? `\n${result.error.message}` : ''}`;
    return { ok: result.status === 0, output };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The one object of a kind (and name, when given); throws when there is not exactly one. */
export function only(objects: readonly K8sObject[], kind: string, name?: string): K8sObject {
  const found = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (found.length !== 1) {
    throw new Error(`expected one ${kind}${name ? ` ${name}` : ''}, found ${found.length}`);
  }
  const [first] = found;
  if (!first) throw new Error(`no ${kind}`);
  return first;
}

export function container(deployment: K8sObject, name: string): Container {
  const found = podTemplate(deployment).spec.containers.find((c) => c.name === name);
  if (!found) throw new Error(`Deployment ${deployment.metadata.name} has no container ${name}`);
  return found;
}

/** A container's plain `value` environment variables (no valueFrom). */
export function envOf(c: Container): Record<string, string> {
  const env: Record<string, string> = {};
  for (const v of c.env ?? []) {
    if (v.value === undefined) throw new Error(`${c.name}: env ${v.name} has no plain value`);
    env[v.name] = v.value;
  }
  return env;
}

/**
 * Writes a ConfigMap's files the way the kubelet mounts a ConfigMap volume: the data in a
 * timestamped `..<ts>` directory, `..data` pointing at it, one symlink per key through `..data`.
 */
export function mountConfigMap(configMap: K8sObject, dir: string): void {
  const data = configMap.data ?? {};
  const stamp = '..2026_01_01_00_00_00.000000001';
  fs.mkdirSync(path.join(dir, stamp), { recursive: true });
  for (const [key, text] of Object.entries(data)) fs.writeFileSync(path.join(dir, stamp, key), text);
  fs.symlinkSync(stamp, path.join(dir, '..data'));
  for (const key of Object.keys(data)) fs.symlinkSync(path.join('..data', key), path.join(dir, key));
}

/**
 * Updates a directory made by mountConfigMap the way the kubelet applies a ConfigMap change: the
 * new data in a new `..<ts>` directory, then `..data` swapped to it in one rename.
 */
export function updateMountedConfigMap(dir: string, data: Readonly<Record<string, string>>): void {
  const stamp = `..2026_01_01_00_00_00.${String(Date.now()).padStart(9, '0')}`;
  fs.mkdirSync(path.join(dir, stamp));
  for (const [key, text] of Object.entries(data)) fs.writeFileSync(path.join(dir, stamp, key), text);
  const old = fs.readlinkSync(path.join(dir, '..data'));
  fs.symlinkSync(stamp, path.join(dir, '..data_tmp'));
  fs.renameSync(path.join(dir, '..data_tmp'), path.join(dir, '..data'));
  fs.rmSync(path.join(dir, old), { recursive: true, force: true });
}
