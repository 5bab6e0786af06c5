import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * A directory laid out the way the kubelet mounts a ConfigMap, updated the way it updates one:
 * each version in a `..<timestamp>` directory, `..data` a symlink to the current one (replaced
 * atomically by renaming `..data_tmp`), and one symlink per key through `..data`.
 */
export class ConfigMapDir {
  readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sagamesh-configmap-'));
  private generation = 0;

  write(files: Readonly<Record<string, string>>): void {
    const gen = `..2026_11_23_12_00_${String(++this.generation).padStart(2, '0')}.000000000`;
    fs.mkdirSync(path.join(this.dir, gen));
    for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(this.dir, gen, name), text);
    const data = path.join(this.dir, '..data');
    const previous = fs.existsSync(data) ? fs.readlinkSync(data) : undefined;
    fs.symlinkSync(gen, path.join(this.dir, '..data_tmp'));
    fs.renameSync(path.join(this.dir, '..data_tmp'), data);
    for (const name of Object.keys(files)) {
      const link = path.join(this.dir, name);
      if (!fs.existsSync(link)) fs.symlinkSync(path.join('..data', name), link);
    }
    // Keys gone from the new version lose their links, as with the kubelet.
    for (const entry of fs.readdirSync(this.dir)) {
      if (!entry.startsWith('.') && !(entry in files)) fs.rmSync(path.join(this.dir, entry));
    }
    if (previous) fs.rmSync(path.join(this.dir, previous), { recursive: true });
  }
}
