import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { after, describe, it } from 'node:test';
import { GitRepository, gitEnvironment } from '../git/repository.ts';
import { exampleFleetRepo as newExampleFleetRepo } from './helpers/git.ts';

const repos: string[] = [];
after(async () => {
  for (const dir of repos) await rm(dir, { recursive: true, force: true });
});

async function exampleFleetRepo(): Promise<string> {
  const dir = await newExampleFleetRepo();
  repos.push(dir);
  return dir;
}

describe('GitRepository', () => {
  it('opens a repository when the operator sets GIT_CONFIG_GLOBAL or GIT_CONFIG_COUNT', async () => {
    const dir = await exampleFleetRepo();
    const repo = await GitRepository.open(dir, {
      GIT_CONFIG_GLOBAL: '/dev/null',
      GIT_CONFIG_COUNT: '1',
      GIT_CONFIG_KEY_0: 'core.quotepath',
      GIT_CONFIG_VALUE_0: 'off',
    });
    assert.match(await repo.resolveCommit('HEAD'), /^[0-9a-f]{40}$/);
  });

  it('ignores variables of ours that would make git run programs or use another repository', async () => {
    // `npm run` sets EDITOR; a git hook sets GIT_DIR. Neither may reach fleetwave's git.
    const dir = await exampleFleetRepo();
    const saved = {
      EDITOR: process.env['EDITOR'],
      GIT_DIR: process.env['GIT_DIR'],
      GIT_ASKPASS: process.env['GIT_ASKPASS'],
    };
    Object.assign(process.env, {
      EDITOR: 'vi',
      GIT_DIR: '/nonexistent',
      GIT_ASKPASS: '/bin/false',
    });
    try {
      const repo = await GitRepository.open(dir);
      assert.match(await repo.resolveCommit('HEAD'), /^[0-9a-f]{40}$/);
      const env = gitEnvironment();
      assert.equal(env['EDITOR'], undefined);
      assert.equal(env['GIT_DIR'], undefined);
      assert.equal(env['GIT_TERMINAL_PROMPT'], '0');
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });

  it('refuses a revision that looks like an option', async () => {
    const repo = await GitRepository.open(await exampleFleetRepo());
    await assert.rejects(repo.resolveCommit('--output=/tmp/x'), { code: 'GIT_REVISION_NOT_FOUND' });
  });
});
