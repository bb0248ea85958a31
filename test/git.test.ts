import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GitRepository } from '../git/repository.ts';
import { exampleFleetRepo } from './helpers/git.ts';

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

  it('refuses a revision that looks like an option', async () => {
    const repo = await GitRepository.open(await exampleFleetRepo());
    await assert.rejects(repo.resolveCommit('--output=/tmp/x'), { code: 'GIT_REVISION_NOT_FOUND' });
  });
});
