// The bundled validate action, run as the runner runs it, on fleets written by the tests in
// real git repositories, against a fake GitHub that records every call.

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { COMMENT_MARKER } from '../../core/plan/format.ts';
import { git } from '../helpers/git.ts';
import { BOT_TOKEN, FakeGitHub, PAT_TOKEN, READ_ONLY_TOKEN } from './fake-github.ts';
import { fleetFiles, fleetYaml, inventoryJson, type FleetSpec, type WaveSpec } from './fleets.ts';
import { positionOf, pullRequestEvent, runAction, writeFiles, type ActionRun } from './harness.ts';

const ORBIT: FleetSpec = {
  name: 'orbit-logs',
  version: '1.0.0',
  versions: ['1.0.0', '1.1.0'],
  waves: [
    {
      name: 'pilot',
      labels: { env: 'staging' },
      percent: 50,
      bake: '10m',
      gates: ['minAgents: 3'],
    },
    { name: 'rest', percent: 100, bake: '1h', gates: ['maxFailedRatio: 0.05'] },
  ],
};
const DIR = 'deploy/agents';

class Repo {
  readonly dir: string;
  constructor(dir: string) {
    this.dir = dir;
  }
  static async create(files: Record<string, string>): Promise<Repo> {
    const repo = new Repo(await mkdtemp(join(tmpdir(), 'fw-validate-')));
    git(repo.dir, 'init', '-q', '-b', 'main');
    await repo.commit(files, 'the fleet');
    return repo;
  }
  async commit(files: Record<string, string | null>, message: string): Promise<string> {
    await writeFiles(this.dir, files);
    git(this.dir, 'add', '-A');
    git(this.dir, 'commit', '-q', '--allow-empty', '-m', message);
    return git(this.dir, 'rev-parse', 'HEAD');
  }
}

const github = new FakeGitHub();
const cleanup: string[] = [];
before(() => github.start());
after(async () => {
  await github.stop();
  for (const dir of cleanup) await rm(dir, { recursive: true, force: true });
});

async function validate(
  repo: Repo,
  pr: { number: number; base: string; head: string; headRepository?: string },
  inputs: Record<string, string> = {},
): Promise<ActionRun> {
  return runAction('validate', {
    workspace: repo.dir,
    inputs: { path: DIR, token: BOT_TOKEN, comment: 'true', ...inputs },
    eventName: 'pull_request',
    event: pullRequestEvent(pr),
    apiUrl: github.url,
  });
}

function noStackTrace(run: ActionRun): void {
  assert.doesNotMatch(
    run.stdout + run.stderr,
    /^\s+at .+:\d+:\d+\)?$/m,
    'a stack trace was printed',
  );
}

describe('actions/validate on a valid change', () => {
  let repo: Repo;
  let base: string;
  let head: string;
  let commentId: number;
  const PR = 7;

  before(async () => {
    repo = await Repo.create({
      ...fleetFiles(DIR, ORBIT),
      'inventory/agents.json': inventoryJson([
        { prefix: 'stg', count: 30, labels: { env: 'staging', os: 'linux', arch: 'amd64' } },
        { prefix: 'prd', count: 50, labels: { env: 'prod', os: 'linux', arch: 'arm64' } },
      ]),
    });
    cleanup.push(repo.dir);
    base = git(repo.dir, 'rev-parse', 'HEAD');
    head = await repo.commit(fleetFiles(DIR, { ...ORBIT, version: '1.1.0' }), 'roll out 1.1.0');
  });

  it('reports valid, plans the change over the inventory, and comments once', async () => {
    const run = await validate(
      repo,
      { number: PR, base, head },
      { inventory: 'inventory/agents.json' },
    );
    assert.equal(run.status, 0, run.stdout + run.stderr);
    assert.deepEqual(run.outputs, { valid: 'true', 'error-count': '0', 'changed-agents': '80' });
    assert.deepEqual(run.annotations, []);
    assert.match(run.summary, /## fleetwave: `deploy\/agents` is valid/);
    assert.ok(
      run.summary.includes(`fleetwave plan: \`${base.slice(0, 7)}\` → \`${head.slice(0, 7)}\``),
    );
    assert.match(
      run.summary,
      /\*\*80 of 80 agents\*\* get a new target \(version 1\.0\.0 → 1\.1\.0\)/,
    );
    assert.match(run.summary, /```mermaid/);
    const comments = github.on(PR);
    assert.equal(comments.length, 1);
    assert.ok(comments[0]!.body.startsWith(COMMENT_MARKER));
    assert.match(comments[0]!.body, /\*\*80 of 80 agents\*\*/);
    assert.match(comments[0]!.body, /\| 0 \| \*\*pilot\*\* \| 50% of env=staging \| 10m \|/);
    commentId = comments[0]!.id;
    const posts = github.calls.filter((c) => c.method === 'POST');
    assert.equal(posts.length, 1);
    assert.equal(posts[0]!.path, `/repos/acme/fleet-config/issues/${PR}/comments`);
    assert.equal(posts[0]!.token, BOT_TOKEN);
  });

  it('updates the same comment on the next push, never a second one', async () => {
    const writesBefore = github.writes().length;
    const head2 = await repo.commit(
      {
        [`${DIR}/config/00-base.yaml`]: fleetFiles(DIR, {
          ...ORBIT,
          values: ['agent:', '  logLevel: debug'],
        })[`${DIR}/config/00-base.yaml`]!,
      },
      'debug logs',
    );
    const run = await validate(repo, { number: PR, base, head: head2 });
    assert.equal(run.status, 0, run.stdout + run.stderr);
    assert.equal(run.outputs['changed-agents'], '', 'no inventory: no count');
    const comments = github.on(PR);
    assert.equal(comments.length, 1);
    assert.equal(comments[0]!.id, commentId);
    assert.ok(
      comments[0]!.body.includes(`\`${head2.slice(0, 7)}\``),
      'the comment shows the new head',
    );
    assert.match(comments[0]!.body, /`agent\.logLevel` \| `"info"` \| `"debug"`/);
    const writes = github.writes().slice(writesBefore);
    assert.deepEqual(
      writes.map((c) => `${c.method} ${c.path}`),
      [`PATCH /repos/acme/fleet-config/issues/comments/${commentId}`],
    );

    // The same push again: the comment already says it, nothing is written.
    const again = await validate(repo, { number: PR, base, head: head2 });
    assert.equal(again.status, 0);
    assert.equal(github.writes().length, writesBefore + 1);
    assert.match(again.stdout, /plan comment unchanged/);
  });
});

describe('actions/validate after the base branch moved on', () => {
  it('plans from the merge base: only what the pull request changes, not what main merged since', async () => {
    const repo = await Repo.create(fleetFiles(DIR, ORBIT));
    cleanup.push(repo.dir);
    const fork = git(repo.dir, 'rev-parse', 'HEAD');
    // The pull request: debug logs, on its own branch.
    git(repo.dir, 'checkout', '-q', '-b', 'debug-logs');
    const layer = `${DIR}/config/00-base.yaml`;
    const head = await repo.commit(
      { [layer]: fleetFiles(DIR, { ...ORBIT, values: ['agent:', '  logLevel: debug'] })[layer]! },
      'debug logs',
    );
    // Meanwhile main rolls out 1.1.0.
    git(repo.dir, 'checkout', '-q', 'main');
    const base = await repo.commit(fleetFiles(DIR, { ...ORBIT, version: '1.1.0' }), '1.1.0');
    git(repo.dir, 'checkout', '-q', 'debug-logs');

    const run = await validate(repo, { number: 12, base, head }, { comment: 'false' });
    assert.equal(run.status, 0, run.stdout + run.stderr);
    assert.ok(
      run.summary.includes(`fleetwave plan: \`${fork.slice(0, 7)}\` → \`${head.slice(0, 7)}\``),
      run.summary,
    );
    assert.match(run.summary, /`agent\.logLevel` \| `"info"` \| `"debug"`/);
    assert.doesNotMatch(run.summary, /1\.1\.0/, "main's 1.1.0 is not this pull request's");
  });
});

describe('actions/validate on a broken fleet', () => {
  it('annotates every error at its file, line and column, fails, and says so in the comment', async () => {
    const repo = await Repo.create(fleetFiles(DIR, ORBIT));
    cleanup.push(repo.dir);
    const base = git(repo.dir, 'rev-parse', 'HEAD');
    const files = fleetFiles(DIR, {
      ...ORBIT,
      waves: [{ ...ORBIT.waves[0]!, bake: 'ten minutes' }, ORBIT.waves[1]!],
      values: ['agent:', '  host: ${agent.hostname}', '  password: hunter2hunter2'],
    });
    const release = `${DIR}/releases/1.1.0.yaml`;
    files[release] = files[release]!.replace(/sha256: [0-9a-f]+/, 'sha256: not-a-digest');
    const head = await repo.commit(files, 'break it');
    const run = await validate(repo, { number: 8, base, head });

    assert.equal(run.status, 1, run.stdout + run.stderr);
    noStackTrace(run);
    const layer = `${DIR}/config/00-base.yaml`;
    const expected = [
      [`${DIR}/fleet.yaml`, positionOf(files[`${DIR}/fleet.yaml`]!, 'ten minutes')],
      [layer, positionOf(files[layer]!, '${agent.hostname}')],
      [layer, positionOf(files[layer]!, 'hunter2hunter2')],
      [release, positionOf(files[release]!, 'not-a-digest')],
    ] as const;
    const errors = run.annotations.filter((a) => a.startsWith('::error '));
    for (const [file, at] of expected) {
      const where = `file=${file},line=${at.line},col=${at.col}`;
      assert.ok(
        errors.some((a) => a.startsWith(`::error ${where},`)),
        `no annotation at ${where}:\n${run.annotations.join('\n')}`,
      );
    }
    assert.equal(errors.length, expected.length);
    assert.deepEqual(run.outputs, { valid: 'false', 'error-count': '4', 'changed-agents': '' });
    assert.match(run.summary, /is invalid \(4 errors\)/);
    for (const [file, at] of expected)
      assert.ok(run.summary.includes(`${file}:${at.line}:${at.col}`));
    const comment = github.on(8);
    assert.equal(comment.length, 1);
    assert.ok(comment[0]!.body.startsWith(COMMENT_MARKER));
    assert.match(comment[0]!.body, /cannot roll out until these are fixed/);
    const bake = expected[0][1];
    assert.ok(
      comment[0]!.body.includes(
        `https://github.com/acme/fleet-config/blob/${head}/${DIR}/fleet.yaml#L${bake.line}`,
      ),
      'errors link to their line at the head commit',
    );
  });

  it('annotates the first ten errors and lists all of them in the summary', async () => {
    const waves: WaveSpec[] = Array.from({ length: 12 }, (_, i) => ({
      name: `ring-${i}`,
      labels: { ring: `r${i}` },
      percent: 10,
      bake: `${i + 1} fortnights`,
    }));
    waves.push({ name: 'all', percent: 100, bake: '1h' });
    const text = fleetYaml({ ...ORBIT, waves });
    const repo = await Repo.create({ ...fleetFiles(DIR, ORBIT), [`${DIR}/fleet.yaml`]: text });
    cleanup.push(repo.dir);
    const head = git(repo.dir, 'rev-parse', 'HEAD');
    const run = await validate(repo, { number: 9, base: head, head }, { comment: 'false' });
    assert.equal(run.status, 1);
    const errors = run.annotations.filter((a) => a.startsWith('::error '));
    assert.equal(errors.length, 10);
    assert.equal(run.outputs['error-count'], '12');
    for (let i = 0; i < 12; i++) {
      const at = positionOf(text, `${i + 1} fortnights`);
      assert.ok(
        run.summary.includes(`${DIR}/fleet.yaml:${at.line}:${at.col}`),
        `summary lacks error ${i}`,
      );
    }
    assert.match(run.stdout, /2 more errors are not annotated/);
    assert.equal(github.on(9).length, 0, 'comment: false writes no comment');
  });
});

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

describe('actions/validate with a reconciler', () => {
  it('adds live counts per wave from /v1/status, and warns when it cannot reach it', async () => {
    const repo = await Repo.create(fleetFiles(DIR, ORBIT));
    cleanup.push(repo.dir);
    const base = git(repo.dir, 'rev-parse', 'HEAD');
    const head = await repo.commit(fleetFiles(DIR, { ...ORBIT, version: '1.1.0' }), 'roll out');
    const status = {
      ready: true,
      stable: base,
      candidate: null,
      waves: [
        {
          index: 0,
          name: 'pilot',
          revision: base,
          agents: 12,
          running: { candidate: 0, stable: 12, other: 0 },
          health: { ok: 11, degraded: 0, failed: 1, unknown: 0 },
        },
        {
          index: 1,
          name: 'rest',
          revision: base,
          agents: 340,
          running: { candidate: 0, stable: 339, other: 1 },
          health: { ok: 340, degraded: 0, failed: 0, unknown: 0 },
        },
      ],
    };
    const server = createServer((req, res) => {
      if (req.url === '/v1/status')
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(status));
      else res.writeHead(404).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as { port: number };
    try {
      const run = await validate(
        repo,
        { number: 40, base, head },
        { 'reconciler-url': `http://127.0.0.1:${port}` },
      );
      assert.equal(run.status, 0, run.stdout);
      assert.match(github.on(40)[0]!.body, /\| rest \| 340 \| 0 \| 339 \| 0 \|/);
    } finally {
      await new Promise((r) => server.close(r));
    }
    const down = await validate(
      repo,
      { number: 41, base, head },
      { 'reconciler-url': `http://127.0.0.1:${port}` },
    );
    assert.equal(down.status, 0);
    assert.ok(down.annotations.some((a) => a.startsWith('::warning') && a.includes('unreachable')));
    assert.match(github.on(41)[0]!.body, /unreachable/);
  });
});
