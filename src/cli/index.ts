#!/usr/bin/env node
import { main } from '../main';
import { processIo } from './io';
import { runCli } from './program';

/** The `sagamesh` executable (package.json `bin`). `sagamesh serve` is `npm start`'s sagamesh. */
runCli(process.argv.slice(2), processIo, main).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`sagamesh: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
