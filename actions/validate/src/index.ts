// Entry point of the validate action: everything happens in run().
import { run } from './main.ts';

await run();
