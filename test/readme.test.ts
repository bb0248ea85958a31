// The README's first-hour examples run as shown and print what it shows.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fleetwave, REPO_ROOT } from './helpers/cli.ts';
import {
  README,
  consoleExamples,
  fencedBlocks,
  words,
  type ConsoleExample,
} from './helpers/readme.ts';

/** What a terminal shows: stdout, then the summary line on stderr. */
function printed(args: string[]): string[] {
  const r = fleetwave(args, { cwd: REPO_ROOT });
  return `${r.stdout}${r.stderr}`.replace(/\n$/, '').split('\n');
}

/** Exactly the shown lines; where the README shows "…", lines may be left out. */
function assertShows(example: ConsoleExample, actual: string[]): void {
  const shown = example.output;
  if (!shown.includes('…')) {
    assert.deepEqual(actual, shown, `$ ${example.command}`);
    return;
  }
  let at = 0;
  for (const line of shown.filter((l) => l !== '…')) {
    const found = actual.indexOf(line, at);
    assert.ok(
      found >= 0,
      `$ ${example.command}\nprints no line ${JSON.stringify(line)} (in order) in:\n${actual.join('\n')}`,
    );
    at = found + 1;
  }
}

const fleetwaveExamples = consoleExamples().filter((e) => e.command.startsWith('npx fleetwave '));

describe('the README', () => {
  it('runs on a machine whose own node is older: every command goes through npx or npm', () => {
    for (const file of ['README.md', 'bench/README.md']) {
      const text = readFileSync(join(REPO_ROOT, file), 'utf8');
      const bare = text
        .split('\n')
        .filter((l) => /(^|`|\$ )node (?!_modules)[\w-]/.test(l) && !/`node --test` over/.test(l));
      assert.deepEqual(bare, [], `${file} has commands that need Node 24 as the machine's node`);
    }
  });

  for (const example of fleetwaveExamples.filter((e) => !e.command.includes(' plan '))) {
    it(`shows what \`${example.command}\` prints`, () => {
      assertShows(example, printed(words(example.command).slice(2)));
    });
  }

  describe('plan example', () => {
    const cleanup: string[] = [];
    after(async () => {
      for (const dir of cleanup) await rm(dir, { recursive: true, force: true });
    });

    it('runs as written in a scratch copy and prints what the README shows', async () => {
      const setup = fencedBlocks(README).find(
        (b) => b.language === 'sh' && b.lines.some((l) => l.includes('/tmp/acme-fleet')),
      );
      assert.ok(setup, 'the README sets up /tmp/acme-fleet');
      const example = fleetwaveExamples.find((e) => e.command.includes(' plan '));
      assert.ok(example, 'the README shows a plan');
      const dir = await mkdtemp(join(tmpdir(), 'fw-readme-'));
      cleanup.push(dir);
      const scratch = join(dir, 'acme-fleet');
      const here = (s: string) => s.replaceAll('/tmp/acme-fleet', scratch);
      execFileSync('bash', ['-euc', here(setup.lines.join('\n'))], { cwd: REPO_ROOT });
      // Commit ids depend on the clock; everything else must be as shown.
      const sha = (lines: string[]) => lines.map((l) => l.replace(/\b[0-9a-f]{7}\b/g, '<sha>'));
      const actual = printed(words(here(example.command)).slice(2));
      assertShows({ ...example, output: sha(example.output) }, sha(actual));
    });
  });

  it('shows every example fleetwave command it promises (validate both ways, targets, plan)', () => {
    const commands = fleetwaveExamples.map((e) => e.command);
    for (const want of ['validate fleet', 'validate examples/broken', 'targets fleet', 'plan '])
      assert.ok(
        commands.some((c) => c.includes(want)),
        `no "${want}" example in ${commands.join('; ')}`,
      );
  });
});
