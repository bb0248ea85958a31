// The bundled validate action, run as the runner runs it, on a valid change: it plans the change
// over the inventory from the merge base, comments once and updates that comment, and adds live
// counts from a reconciler. Fleets in real git repositories, a fake GitHub (validate-rig.ts).

import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { before, describe, it } from 'node:test';
import { COMMENT_MARKER } from '../../core/plan/format.ts';
import { git } from '../helpers/git.ts';
import { BOT_TOKEN } from './fake-github.ts';
import { fleetFiles, inventoryJson } from './fleets.ts';
import { DIR, ORBIT, Repo, validateRig } from './validate-rig.ts';

const { github, cleanup, validate } = validateRig();

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
