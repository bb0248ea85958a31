// The agent's cache: a write killed at any moment leaves the old or the new target, never half;
// a torn or edited file is ignored; a directory it cannot write is a clear error at start.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { TARGET_FILE, TargetCache, decodeState, encodeState } from '../../agent/cache.ts';
import { Agent } from '../../agent/client.ts';
import { isAgentError } from '../../agent/errors.ts';
import { run } from '../../cli/run.ts';
import { makeTarget } from './fixtures/targets.ts';

const WRITER = fileURLToPath(new URL('./fixtures/cache-writer.ts', import.meta.url));

describe('target cache', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetwave-cache-'));
  });
  after(async () => {
    await chmod(dir, 0o700).catch(() => {});
    await rm(dir, { recursive: true, force: true });
  });

  it('reads back what it wrote', async () => {
    const cache = new TargetCache(join(dir, 'plain'));
    await cache.prepare();
    assert.deepEqual(await cache.read(), { state: undefined });
    const state = { target: makeTarget('x'), artifactPath: '/a', appliedAt: 5 };
    await cache.write(state);
    assert.deepEqual((await cache.read()).state, state);
  });

  it('ignores a torn, edited or foreign file instead of trusting it', () => {
    const text = encodeState({ target: makeTarget('y'), artifactPath: '/a', appliedAt: 1 });
    assert.equal(decodeState(text).ok, true);
    for (const bad of [
      text.slice(0, Math.floor(text.length / 2)),
      text.replace('"mark":"y"', '"mark":"z"'),
      '',
      '{"target": {}}',
    ]) {
      const decoded = decodeState(bad);
      assert.equal(decoded.ok, false, bad.slice(0, 40));
    }
  });

  it('never leaves half a file when the writer is killed mid-write', async () => {
    const cacheDir = join(dir, 'killed');
    const reader = new TargetCache(cacheDir);
    // Each round kills the writer after a different number of writes.
    for (let round = 0; round < 6; round++) {
      const child = spawn(process.execPath, [WRITER, cacheDir], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let writes = 0;
      const enough = 1 + (round % 3);
      await new Promise<void>((resolve) => {
        child.stdout.on('data', (chunk: Buffer) => {
          writes += chunk.toString().split('\n').length - 1;
          if (writes >= enough) {
            child.kill('SIGKILL');
            resolve();
          }
        });
        child.once('exit', () => resolve());
      });
      await new Promise((r) =>
        child.exitCode === null && child.signalCode === null ? child.once('exit', r) : r(null),
      );
      assert.equal(child.signalCode, 'SIGKILL', 'the writer was killed, not finished');
      const { state, problem } = await reader.read();
      assert.equal(problem, undefined, `round ${round}: ${problem}`);
      assert.ok(state, `round ${round}: a complete target`);
      const mark = (state.target.config as { mark: string }).mark;
      assert.ok(mark === 'A' || mark === 'B');
      assert.equal(state.artifactPath, `/artifacts/${mark}`);
    }
    // A torn write in place of target.json (what a non-atomic writer would leave) is ignored.
    const text = await readFile(join(cacheDir, TARGET_FILE), 'utf8');
    await writeFile(join(cacheDir, TARGET_FILE), text.slice(0, 1000));
    const torn = await reader.read();
    assert.equal(torn.state, undefined);
    assert.match(torn.problem ?? '', /checksum/);
  });

  it('refuses to start on a cache directory it cannot write, with a clear error', async () => {
    const file = join(dir, 'a-file');
    await writeFile(file, 'not a directory');
    const agent = new Agent({
      urls: ['http://127.0.0.1:9'],
      id: 'a',
      labels: {},
      cacheDir: join(file, 'cache'),
    });
    await assert.rejects(agent.start(), (e: unknown) => {
      assert.ok(isAgentError(e, 'CACHE_UNWRITABLE'));
      assert.match(e.message, /a-file\/cache is not writable: .*ENOTDIR/);
      return true;
    });
  });

  it(
    'refuses a read-only cache directory (as a user root does not override)',
    { skip: process.getuid?.() === 0 && 'root writes anywhere' },
    async () => {
      const ro = join(dir, 'read-only');
      await new TargetCache(ro).prepare();
      await chmod(ro, 0o500);
      await assert.rejects(new TargetCache(ro).prepare(), (e: unknown) =>
        isAgentError(e, 'CACHE_UNWRITABLE'),
      );
    },
  );

  it('fleetwave agent exits 1 and says why when the cache directory is not writable', async () => {
    const file = join(dir, 'another-file');
    await writeFile(file, '');
    const err: string[] = [];
    const code = await run(
      ['agent', '--url', 'http://127.0.0.1:9', '--id', 'web-1', '--cache-dir', join(file, 'x')],
      { cwd: dir, env: {}, stdout: () => {}, stderr: (t) => err.push(t) },
    );
    assert.equal(code, 1);
    assert.match(
      err.join(''),
      /CACHE_UNWRITABLE: the cache directory .*another-file\/x is not writable/,
    );
  });

  it('fleetwave agent explains usage errors with exit 2', async () => {
    for (const [args, message] of [
      [['agent'], /needs --url/],
      [['agent', '--url', 'ftp://x'], /not http/],
      [['agent', '--url', 'http://x', '--labels', 'env'], /not key=value/],
      [['agent', '--url', 'http://x', '--id', 'bad/id'], /not an agent id/],
    ] as const) {
      const err: string[] = [];
      const code = await run([...args], {
        cwd: dir,
        env: {},
        stdout: () => {},
        stderr: (t) => err.push(t),
      });
      assert.equal(code, 2, args.join(' '));
      assert.match(err.join(''), message);
    }
  });
});
