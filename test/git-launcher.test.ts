// The reconciler's git commands start from a small helper process (GitLauncher, git/run.ts),
// not from the large server: real git, real processes. Same results as starting git here,
// bytes included; the launcher starts again after it died and keeps nothing running idle.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { GitRepository } from '../git/repository.ts';
import { REPO_ROOT } from './helpers/cli.ts';
import { exampleFleetRepo, git } from './helpers/git.ts';

/** The pid of the process that started the git running this alias. */
const PARENT = ['-c', 'alias.parent=!cut -d" " -f4 /proc/$PPID/stat', 'parent'];

function parentOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
}

describe('git started from the launcher', () => {
  let work: string;
  before(async () => {
    work = await exampleFleetRepo();
  });
  after(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('starts each command from the launcher, with the same results', async () => {
    const here = await GitRepository.open(work);
    const launched = await GitRepository.open(work, {}, { launcher: true });
    assert.equal(Number((await here.exec(PARENT)).stdout), process.pid);
    const launcher = Number((await launched.exec(PARENT)).stdout);
    assert.notEqual(launcher, process.pid);
    assert.equal(parentOf(launcher), process.pid, 'the launcher is our child');
    assert.equal(Number((await launched.exec(PARENT)).stdout), launcher, 'and stays up');

    // Exit codes, stderr, stdin as bytes.
    assert.deepEqual(
      await launched.exec(['rev-parse', '--verify', '--quiet', 'nothing']),
      await here.exec(['rev-parse', '--verify', '--quiet', 'nothing']),
    );
    const bytes = Buffer.from([0xff, 0x00, 0xfe, 0x0a]);
    const blob = (await launched.exec(['hash-object', '-w', '--stdin'], { input: bytes })).stdout;
    assert.deepEqual(
      spawnSync('git', ['cat-file', 'blob', blob.trim()], { cwd: work }).stdout,
      bytes,
    );
    const fetched = await launched.exec(['fetch', '--quiet', '--end-of-options', '/nonexistent']);
    assert.notEqual(fetched.code, 0);
    assert.match(fetched.stderr, /nonexistent/);
    launched.close();
    here.close();
  });

  it('starts the launcher again after it died', async () => {
    const repo = await GitRepository.open(work, {}, { launcher: true });
    const first = Number((await repo.exec(PARENT)).stdout);
    process.kill(first, 'SIGKILL');
    // Whether the death is noticed before or after the command is sent, the command fails
    // as a command that could not start (127), and the next one runs.
    const during = await repo.exec(['rev-parse', 'HEAD']);
    assert.ok(during.code === 127 || during.stdout.trim() === git(work, 'rev-parse', 'HEAD'));
    const second = Number((await repo.exec(PARENT)).stdout);
    assert.ok(second !== first && second !== process.pid, 'a new launcher');
    repo.close();
  });

  it('does not keep a process running once nothing is asked', () => {
    const script = `
      import { GitRepository } from ${JSON.stringify(pathToFileURL(join(REPO_ROOT, 'git/repository.ts')).href)};
      const repo = await GitRepository.open(${JSON.stringify(work)}, {}, { launcher: true });
      process.stdout.write((await repo.exec(['rev-parse', 'HEAD'])).stdout);
    `;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      encoding: 'utf8',
      timeout: 20_000,
    });
    assert.equal(r.error, undefined, 'it ended by itself');
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), git(work, 'rev-parse', 'HEAD'));
  });
});
