// A process out of file descriptors must not die in git's wrapper: a spawn that fails with
// EMFILE is a failed git command, answered as an error, and git works again once descriptors
// are free. That holds for the object reader (one long-lived cat-file) too: nothing reads
// objects before the descriptors run out, so its start is what fails. The condition is real: a child process with `ulimit -n 128` opens /dev/null until
// open() itself fails with EMFILE, then calls the wrapper.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { REPO_ROOT } from './helpers/cli.ts';
import { exampleFleetRepo, git } from './helpers/git.ts';

const CHILD = `
import { openSync, closeSync } from 'node:fs';
import { GitRepository } from ${JSON.stringify(pathToFileURL(join(REPO_ROOT, 'git/repository.ts')).href)};
const [dir, head, blob] = process.argv.slice(2);
const repo = await GitRepository.open(dir);
const fds = [];
try {
  for (;;) fds.push(openSync('/dev/null', 'r'));
} catch (e) {
  if (e.code !== 'EMFILE') throw e;
}
const outcome = async (f) => f().then(() => 'ok', (e) => e.code ?? String(e));
const starved = {
  fetch: await outcome(() => repo.fetchRefspecs(dir, ['+refs/heads/main:refs/heads/copy'])),
  resolveCommit: await outcome(() => repo.resolveCommit('HEAD')),
  listTree: await outcome(() => repo.listTree(head, 'fleet')),
  readBlobs: await outcome(() => repo.readBlobs([blob])),
  exec: (await repo.exec(['--version'])).code,
};
for (const fd of fds) closeSync(fd);
const recovered = await outcome(() => repo.resolveCommit('HEAD'));
process.stdout.write(JSON.stringify({ starved, recovered }));
`;

describe('git when the process is out of file descriptors (EMFILE)', () => {
  it('fails the command with an error instead of crashing, and works again afterwards', async () => {
    const dir = await exampleFleetRepo();
    try {
      const head = git(dir, 'rev-parse', 'HEAD');
      const blob = git(dir, 'rev-parse', 'HEAD:fleet/fleet.yaml');
      const script = join(dir, 'emfile-child.mjs');
      await writeFile(script, CHILD);
      const r = spawnSync(
        'sh',
        ['-c', 'ulimit -n 128 && exec "$0" "$@"', process.execPath, script, dir, head, blob],
        { encoding: 'utf8', timeout: 60_000 },
      );
      assert.equal(r.status, 0, `the process died: ${r.stderr}`);
      const out = JSON.parse(r.stdout) as {
        starved: Record<string, unknown>;
        recovered: string;
      };
      assert.deepEqual(out.starved, {
        fetch: 'GIT_FETCH_FAILED',
        resolveCommit: 'GIT_FAILED',
        listTree: 'GIT_FAILED',
        readBlobs: 'GIT_FAILED',
        exec: 127,
      });
      assert.equal(out.recovered, 'ok');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
