// The README's examples as data, so tests can check that what it shows is what the commands do.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from './cli.ts';

export const README = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');

export interface FencedBlock {
  language: string;
  lines: string[];
}

export function fencedBlocks(markdown: string): FencedBlock[] {
  const out: FencedBlock[] = [];
  const fence = /^```(\w*)\n([\s\S]*?)^```$/gm;
  for (let m = fence.exec(markdown); m; m = fence.exec(markdown))
    out.push({ language: m[1]!, lines: m[2]!.replace(/\n$/, '').split('\n') });
  return out;
}

export interface ConsoleExample {
  /** The command after `$ `. */
  command: string;
  /** The lines it prints, as shown ("…" stands for lines left out). */
  output: string[];
}

/** Every `$ command` of the README's console blocks, with the output shown below it. */
export function consoleExamples(markdown: string = README): ConsoleExample[] {
  const out: ConsoleExample[] = [];
  for (const block of fencedBlocks(markdown).filter((b) => b.language === 'console')) {
    for (const line of block.lines) {
      if (line.startsWith('$ ')) out.push({ command: line.slice(2), output: [] });
      else out.at(-1)?.output.push(line);
    }
  }
  return out;
}

/** The words of a shell command line (no quoting is used in the README's fleetwave examples). */
export function words(command: string): string[] {
  return command.trim().split(/\s+/);
}
