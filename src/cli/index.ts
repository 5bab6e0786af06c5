#!/usr/bin/env node
import { main } from '../main';
import { processIo } from './io';
import { runCli } from './program';
import { reportError } from './report';

/** The `sagamesh` executable (package.json `bin`). `sagamesh serve` is `npm start`'s sagamesh. */
runCli(process.argv.slice(2), processIo, main).then(
  (code) => process.exit(code),
  (err: unknown) => {
    reportError(processIo, err);
    process.exit(1);
  },
);
