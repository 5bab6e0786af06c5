import { createApp } from './app';
import type { ConfigOverrides } from './config/config';
import { loadConfig } from './config/config';
import { isSagameshError } from './errors';
import { createLogger } from './logger';
import { formatProblem, isDefinitionProblem } from './definition/loader';

/**
 * Entry point: load config → create the app → listen; SIGTERM/SIGINT → graceful stop, exit 0.
 * A startup failure prints every problem (file:line for definitions) and exits 1.
 */
function reportStartupError(err: unknown): void {
  if (isSagameshError(err)) {
    process.stderr.write(`sagamesh: ${err.code}: ${err.message}\n`);
    for (const detail of err.details) {
      process.stderr.write(`  ${isDefinitionProblem(detail) ? formatProblem(detail) : String(detail)}\n`);
    }
  } else {
    process.stderr.write(`sagamesh: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  }
}

/** Runs sagamesh until SIGTERM/SIGINT; `flags` (from `sagamesh serve --…`) override the environment. */
export async function main(flags: ConfigOverrides = {}): Promise<number> {
  let config;
  try {
    config = loadConfig(process.env, flags);
  } catch (err) {
    reportStartupError(err);
    return 1;
  }
  const logger = createLogger({ level: config.logLevel, redactBodyFields: config.logRedact });
  let app;
  try {
    app = await createApp(config, { logger });
  } catch (err) {
    reportStartupError(err);
    return 1;
  }
  try {
    await app.start();
  } catch (err) {
    reportStartupError(err);
    await app.stop().catch(() => undefined);
    return 1;
  }
  logger.info('sagamesh ready');
  return new Promise<number>((resolve) => {
    let stopping = false;
    const shutdown = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, 'shutting down');
      app.stop().then(
        () => resolve(0),
        (err: unknown) => {
          logger.error({ err }, 'shutdown failed');
          resolve(1);
        },
      );
    };
    process.on('SIGTERM', () => shutdown('SIGTERM'));
    process.on('SIGINT', () => shutdown('SIGINT'));
  });
}

if (require.main === module) {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      reportStartupError(err);
      process.exit(1);
    },
  );
}
