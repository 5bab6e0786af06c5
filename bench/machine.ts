import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { envoyBinary } from '../demo/envoy';
import path from 'node:path';
import { REPO_ROOT, toolVersion } from './layout';
import { dtmVersion } from './systems/dtm';

/** The machine and the versions of everything measured, for the report's header. */
export interface MachineInfo {
  readonly date: string;
  readonly cpus: number;
  readonly cpuModel: string;
  readonly memory: string;
  readonly kernel: string;
  readonly versions: Readonly<Record<string, string>>;
}

function sh(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, {
      cwd: REPO_ROOT,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    }).trim();
  } catch {
    return 'unknown';
  }
}

export function machineInfo(storeVersions: Readonly<Record<string, string>>): MachineInfo {
  const cpuinfo = fs.readFileSync('/proc/cpuinfo', 'utf8');
  const envoy = sh(envoyBinary(), ['--version']);
  const free = sh('free', ['-h']).split('\n')[1]?.split(/\s+/)[1] ?? 'unknown';
  const pkg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as {
    version: string;
  };
  return {
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    cpus: Number(sh('nproc', [])) || os.cpus().length,
    cpuModel: /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? 'unknown',
    memory: free,
    kernel: os.release(),
    versions: {
      sagamesh: `${pkg.version} (${sh('git', ['rev-parse', '--short', 'HEAD'])}${sh('git', ['status', '--porcelain', 'src']) ? ', src/ with uncommitted changes' : ''})`,
      node: process.version,
      envoy: /\/(\d+\.\d+\.\d+)\//.exec(envoy)?.[1] ?? envoy,
      dtm: dtmVersion(),
      vegeta: toolVersion('vegeta'),
      go: sh('go', ['env', 'GOVERSION']),
      ...storeVersions,
    },
  };
}
