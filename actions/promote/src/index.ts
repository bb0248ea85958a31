// Entry point of the promote action: everything happens in run().
import { run } from './main.ts';

await run();
