#!/usr/bin/env node
// The `fleetwave` command: wiring only. See cli/run.ts.

import { processIO } from './io.ts';
import { run } from './run.ts';

process.exitCode = await run(process.argv.slice(2), processIO());
