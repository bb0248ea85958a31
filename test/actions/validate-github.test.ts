// The bundled validate action and GitHub: without write access (a wrong or read-only token, a
// fork, no token) it still reports and writes nothing; among many comments it finds its own.

import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { COMMENT_MARKER } from '../../core/plan/format.ts';
import { git } from '../helpers/git.ts';
import { PAT_TOKEN, READ_ONLY_TOKEN } from './fake-github.ts';
import { fleetFiles } from './fleets.ts';
import { DIR, ORBIT, Repo, noStackTrace, validateRig } from './validate-rig.ts';

const { github, cleanup, validate } = validateRig();

describe('actions/validate without write access', () => {
  let repo: Repo;
  let base: string;
  let head: string;
  before(async () => {
    repo = await Repo.create(fleetFiles(DIR, ORBIT));
    cleanup.push(repo.dir);
    base = git(repo.dir, 'rev-parse', 'HEAD');
    head = await repo.commit(fleetFiles(DIR, { ...ORBIT, version: '1.1.0' }), 'roll out 1.1.0');
  });

  it('with a wrong token: says so, still reports, writes nothing', async () => {
    const writes = github.writes().length;
    const run = await validate(repo, { number: 20, base, head }, { token: 'ghp_wrong' });
    assert.equal(run.status, 0, 'a comment problem does not fail validation');
    assert.equal(run.outputs.valid, 'true');
    assert.match(run.summary, /fleetwave plan/);
    assert.ok(
      run.annotations.some(
        (a) => a.startsWith('::warning') && a.includes('GitHub refused the token (401'),
      ),
    );
    assert.equal(github.writes().length, writes);
    noStackTrace(run);
  });

  it('with a wrong token on a broken fleet: the errors are still annotated', async () => {
    const bad = await repo.commit({ [`${DIR}/releases/1.1.0.yaml`]: null }, 'drop the release');
    const run = await validate(repo, { number: 21, base: head, head: bad }, { token: 'ghp_wrong' });
    assert.equal(run.status, 1);
    assert.ok(
      run.annotations.some((a) => a.startsWith(`::error file=${DIR}/fleet.yaml,line=7,col=12,`)),
      run.annotations.join('\n'),
    );
    assert.ok(run.annotations.some((a) => a.includes('GitHub refused the token')));
    git(repo.dir, 'reset', '-q', '--hard', head);
  });

  it('from a fork: no call to GitHub, a clear warning, the plan in the summary', async () => {
    const calls = github.calls.length;
    const run = await validate(
      repo,
      { number: 22, base, head, headRepository: 'outsider/fleet-config' },
      { token: READ_ONLY_TOKEN },
    );
    assert.equal(run.status, 0);
    assert.equal(github.calls.length, calls);
    assert.ok(
      run.annotations.some(
        (a) => a.startsWith('::warning') && a.includes('fork outsider/fleet-config'),
      ),
    );
    assert.match(run.summary, /fleetwave plan/);
  });

  it('with a read-only token: the 403 is explained, nothing is written', async () => {
    const run = await validate(repo, { number: 23, base, head }, { token: READ_ONLY_TOKEN });
    assert.equal(run.status, 0);
    assert.equal(github.on(23).length, 0);
    assert.ok(run.annotations.some((a) => a.includes('403') && a.includes('pull-requests: write')));
  });

  it('without a token: no comment, a warning', async () => {
    const run = await validate(repo, { number: 24, base, head }, { token: '' });
    assert.equal(run.status, 0);
    assert.ok(run.annotations.some((a) => a.includes('no token')));
    assert.equal(github.on(24).length, 0);
  });

  it('refuses a malformed input with one line, not a trace', async () => {
    const run = await validate(repo, { number: 25, base, head }, { comment: 'maybe' });
    assert.equal(run.status, 1);
    assert.deepEqual(run.annotations, [
      '::error::input comment must be true or false, not "maybe"',
    ]);
    noStackTrace(run);
  });
});

describe('actions/validate finds its own comment', () => {
  it("among many, on a later page, and leaves other people's marked comments alone", async () => {
    const repo = await Repo.create(fleetFiles(DIR, ORBIT));
    cleanup.push(repo.dir);
    const base = git(repo.dir, 'rev-parse', 'HEAD');
    const head = await repo.commit(fleetFiles(DIR, { ...ORBIT, version: '1.1.0' }), 'roll out');
    const human = github.seedComment(30, `${COMMENT_MARKER}\nquoting the bot`, {
      login: 'octocat',
      type: 'User',
    });
    for (let i = 0; i < 120; i++)
      github.seedComment(30, `looks good ${i}`, { login: 'octocat', type: 'User' });
    const ours = github.seedComment(30, `${COMMENT_MARKER}\nold plan`, {
      login: 'github-actions[bot]',
      type: 'Bot',
    });
    const run = await validate(repo, { number: 30, base, head });
    assert.equal(run.status, 0);
    const pages = github.calls.filter(
      (c) => c.method === 'GET' && c.path.endsWith('/issues/30/comments'),
    );
    assert.equal(pages.length, 2, 'both pages are read');
    assert.equal(github.on(30).length, 122, 'no new comment');
    assert.match(ours.body, /fleetwave plan/);
    assert.equal(human.body, `${COMMENT_MARKER}\nquoting the bot`);
  });

  it("written with a personal token: matched by the token's user", async () => {
    const repo = await Repo.create(fleetFiles(DIR, ORBIT));
    cleanup.push(repo.dir);
    const base = git(repo.dir, 'rev-parse', 'HEAD');
    const head = await repo.commit(fleetFiles(DIR, { ...ORBIT, version: '1.1.0' }), 'roll out');
    github.seedComment(31, `${COMMENT_MARKER}\nsomeone else's`, { login: 'octocat', type: 'User' });
    const mine = github.seedComment(31, `${COMMENT_MARKER}\nold`, {
      login: 'release-robot',
      type: 'User',
    });
    const run = await validate(repo, { number: 31, base, head }, { token: PAT_TOKEN });
    assert.equal(run.status, 0);
    assert.equal(github.on(31).length, 2);
    assert.match(mine.body, /fleetwave plan/);
  });
});
