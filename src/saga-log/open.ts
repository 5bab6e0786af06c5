import type { Clock } from '../clock';
import type { StoreConfig } from '../config/store-url';
import { EtcdSagaLog } from './etcd';
import { MemorySagaLog } from './memory';
import { PostgresSagaLog } from './postgres';
import type { SagaLog } from '../runtime/journal';
import { SqliteSagaLog } from './sqlite';

/** Opens the configured saga log; rejects with STORE_UNAVAILABLE or STORE_CORRUPT, never half-opens. */
export async function openSagaLog(
  store: StoreConfig,
  opts: { readonly clock: Clock; readonly instanceId: string; readonly leaseTtlMs: number },
): Promise<SagaLog> {
  switch (store.kind) {
    case 'memory':
      return new MemorySagaLog(opts.clock);
    case 'sqlite':
      return SqliteSagaLog.open({ file: store.file, synchronous: store.synchronous }, opts.clock);
    case 'postgres':
      return PostgresSagaLog.open(
        { url: store.url, instanceId: opts.instanceId, leaseTtlMs: opts.leaseTtlMs },
        opts.clock,
      );
    case 'etcd':
      return EtcdSagaLog.open(
        { store, instanceId: opts.instanceId, leaseTtlMs: opts.leaseTtlMs },
        opts.clock,
      );
  }
}
