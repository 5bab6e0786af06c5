/**
 * The real translators, built by scripts/ci/install-translators.sh into .tools/: Envoy Gateway's
 * `egctl` and tools/istio-translate (istio-agent's bootstrap + istiod's xDS generation). A missing
 * one is a failure with the command that installs it, never a skipped test.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { ROOT } from './k8s';

const TOOLS = path.join(ROOT, '.tools');
const INSTALL_HINT = 'run `bash scripts/ci/install-translators.sh` (npm test runs it as pretest)';

export function translatorPath(name: 'egctl' | 'istio-translate'): string {
  const file = path.join(TOOLS, 'bin', name);
  try {
    fs.accessSync(file, fs.constants.X_OK);
  } catch {
    throw new Error(`${file} not found: ${INSTALL_HINT}`);
  }
  return file;
}

/** istio-agent's bootstrap template, from the same istio.io/istio module as istio-translate. */
export function istioBootstrapTemplate(): string {
  const file = path.join(TOOLS, 'istio-translate', 'envoy_bootstrap.json');
  if (!fs.existsSync(file)) throw new Error(`${file} not found: ${INSTALL_HINT}`);
  return file;
}

/** Runs a translator; its stdout, or an error with its stderr. */
export function runTranslator(
  name: 'egctl' | 'istio-translate',
  args: readonly string[],
  env: Readonly<Record<string, string>> = {},
): string {
  const bin = translatorPath(name);
  const result = spawnSync(bin, args, {
    encoding: 'utf8',
    env: { ...process.env, ...env },
    maxBuffer: 256 * 1024 * 1024,
  });
  if (result.error) throw result.error;
  if (result.status !== 0) {
    throw new Error(`${name} ${args.join(' ')} exited with ${result.status}:\n${result.stderr}`);
  }
  return result.stdout;
}

/** Objects as one multi-document YAML stream (`---` between documents), as the translators read it. */
export function toYaml(objects: readonly unknown[]): string {
  return objects.map((o) => YAML.stringify(o, { lineWidth: 0 })).join('---\n');
}
