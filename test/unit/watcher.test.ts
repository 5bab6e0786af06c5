import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import type { SagaDefinition } from '../../src/definition/definition';
import { loadDefinitions } from '../../src/definition/loader';
import type { ReloadResult } from '../../src/definition/watcher';
import { DefinitionsWatcher, problemCodes } from '../../src/definition/watcher';
import { ConfigMapDir } from '../helpers/configmap';

/**
 * The watcher on a real directory: the Kubernetes ConfigMap `..data` symlink swap, plain edits,
 * and a broken set that must leave the last good one in force.
 */

const saga = (name: string, path_: string, status = 201) => `apiVersion: sagamesh.dev/v1alpha1
kind: Saga
metadata: { name: ${name} }
spec:
  match: { method: POST, path: ${path_} }
  steps:
    - name: hotel
      action:
        request: { method: POST, url: http://hotel/bookings }
  response:
    success: { status: ${status} }
`;

interface Harness {
  watcher: DefinitionsWatcher;
  current: () => readonly SagaDefinition[];
  next: () => Promise<ReloadResult>;
}

/**
 * The kubelet links new keys after the swap, so a reload may see a half-updated mount first (and
 * the next event reloads again): wait for the outcome the test is about.
 */
async function until(h: Harness, done: (outcome: ReloadResult) => boolean): Promise<ReloadResult> {
  for (;;) {
    const outcome = await h.next();
    if (done(outcome)) return outcome;
  }
}

const logger = pino({ level: 'silent' });
const watchers: DefinitionsWatcher[] = [];
afterEach(async () => {
  await Promise.all(watchers.splice(0).map((w) => w.stop()));
});

async function watch(dir: string): Promise<Harness> {
  let current: readonly SagaDefinition[] = await loadDefinitions(dir);
  const outcomes: ReloadResult[] = [];
  const waiting: ((r: ReloadResult) => void)[] = [];
  const watcher = new DefinitionsWatcher({
    dir,
    load: () => loadDefinitions(dir),
    current: () => current,
    apply: (defs) => {
      current = defs;
    },
    onReload: (outcome) => {
      const resolve = waiting.shift();
      if (resolve) resolve(outcome);
      else outcomes.push(outcome);
    },
    logger,
    debounceMs: 20,
  });
  watcher.start();
  watchers.push(watcher);
  return {
    watcher,
    current: () => current,
    next: () => {
      const ready = outcomes.shift();
      return ready ? Promise.resolve(ready) : new Promise((resolve) => waiting.push(resolve));
    },
  };
}

describe('DefinitionsWatcher', () => {
  it('applies a ConfigMap update (the ..data symlink swap) as one new set', async () => {
    const cm = new ConfigMapDir();
    cm.write({ 'a.yaml': saga('a', '/a') });
    const h = await watch(cm.dir);
    const [before] = h.current();

    cm.write({ 'a.yaml': saga('a', '/a', 202), 'b.yaml': saga('b', '/b') });
    const outcome = await until(h, () => h.current().length === 2);
    expect(outcome.result).toBe('applied');
    expect(h.current().map((d) => d.name)).toEqual(['a', 'b']);
    const [after] = h.current();
    expect(after?.version).not.toBe(before?.version);
    expect(after?.response.success.status).toBe(202);
    // the definition objects already handed out (to running sagas) are untouched
    expect(before?.response.success.status).toBe(201);
  });

  it('rejects a broken set with every problem and keeps the last good one', async () => {
    const cm = new ConfigMapDir();
    cm.write({ 'a.yaml': saga('a', '/a') });
    const h = await watch(cm.dir);
    const good = h.current();

    cm.write({ 'a.yaml': saga('a', '/a').replace('POST, url', 'POST, nope: 1, url'), 'b.yaml': 'kind: [' });
    const outcome = await until(h, (o) => o.result === 'rejected' && problemCodes(o.error).length === 2);
    if (outcome.result !== 'rejected') throw new Error('unreachable');
    expect(outcome.error.code).toBe('SAGAMESH_ERR_DEFINITIONS_INVALID');
    expect(problemCodes(outcome.error).sort()).toEqual([
      'SAGAMESH_ERR_DEF_SCHEMA',
      'SAGAMESH_ERR_DEF_YAML_SYNTAX',
    ]);
    expect(h.current()).toBe(good);
  });

  it('picks up plain edits of a file in place, and ignores a touch that changes nothing', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sagamesh-sagas-'));
    fs.writeFileSync(path.join(dir, 'a.yaml'), saga('a', '/a'));
    const h = await watch(dir);

    fs.writeFileSync(path.join(dir, 'a.yaml'), saga('a', '/a2'));
    expect((await h.next()).result).toBe('applied');
    expect(h.current()[0]?.match.path).toBe('/a2');

    fs.writeFileSync(path.join(dir, 'a.yaml'), saga('a', '/a2'));
    expect((await h.next()).result).toBe('unchanged');
  });

  it('reload() on demand serialises with reloads from events', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sagamesh-sagas-'));
    fs.writeFileSync(path.join(dir, 'a.yaml'), saga('a', '/a'));
    const h = await watch(dir);
    const results = await Promise.all([h.watcher.reload(), h.watcher.reload()]);
    expect(results.map((r) => r.result)).toEqual(['unchanged', 'unchanged']);
  });

  it('fails with a coded error when the directory cannot be watched', () => {
    const watcher = new DefinitionsWatcher({
      dir: '/nonexistent/sagas',
      load: () => Promise.resolve([]),
      current: () => [],
      apply: () => undefined,
      logger,
      debounceMs: 0,
    });
    let thrown: unknown;
    try {
      watcher.start();
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toMatchObject({ code: 'SAGAMESH_ERR_SAGAS_DIR_UNREADABLE' });
  });
});
