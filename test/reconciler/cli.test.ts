// `fleetwave serve` as people run it: refuses to start without tokens, starts with
// --insecure-local-demo, and shuts down gracefully on SIGTERM.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { CLI, fleetwave } from '../helpers/cli.ts';
import { FleetRepo, LINUX_PROD, call, freePort } from './helpers.ts';

describe('fleetwave serve', () => {
  let repo: FleetRepo;
  before(async () => {
    repo = await FleetRepo.create();
  });
  after(async () => {
    await repo?.cleanup();
  });

  it('refuses to start without tokens, saying which', () => {
    const r = fleetwave(['serve', '--repo', repo.origin, '--data-dir', `${repo.root}/data0`]);
    assert.notEqual(r.status, 0);
    assert.match(
      r.stderr,
      /refusing to start without --enroll-token \(or FLEETWAVE_ENROLL_TOKEN\) and --admin-token/,
    );
    assert.match(r.stderr, /--insecure-local-demo/);
  });

  it('refuses a short token and a missing --repo', () => {
    const short = fleetwave([
      'serve',
      '--repo',
      repo.origin,
      '--enroll-token',
      'abc',
      '--admin-token',
      'x'.repeat(20),
    ]);
    assert.notEqual(short.status, 0);
    assert.match(short.stderr, /--enroll-token must be at least 16 characters/);
    const norepo = fleetwave(['serve', '--insecure-local-demo']);
    assert.notEqual(norepo.status, 0);
    assert.match(norepo.stderr, /--repo/);
  });

  it('starts with --insecure-local-demo, serves, and stops on SIGTERM', async () => {
    const port = await freePort();
    const child = spawn(
      process.execPath,
      [
        CLI,
        'serve',
        '--repo',
        repo.origin,
        '--data-dir',
        `${repo.root}/data1`,
        '--port',
        String(port),
        '--insecure-local-demo',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FLEETWAVE_ENROLL_TOKEN: '' } },
    );
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const exited = new Promise<number | null>((resolve) =>
      child.once('exit', (code) => resolve(code)),
    );
    try {
      const url = `http://127.0.0.1:${port}`;
      let ready = 0;
      for (let i = 0; i < 400 && ready !== 200; i++) {
        await new Promise((r) => setTimeout(r, 50));
        ready = await call(`${url}/readyz`).then(
          (r) => r.status,
          () => 0,
        );
      }
      assert.equal(ready, 200, out);
      // Enrollment is open in the demo.
      const enrolled = await call(`${url}/v1/enroll`, {
        body: { id: 'demo-1', labels: LINUX_PROD },
      });
      assert.equal(enrolled.status, 200);
      // A held long-poll does not keep shutdown waiting: it is answered.
      const token = (enrolled.body as { token: string }).token;
      const body = { id: 'demo-1', labels: LINUX_PROD };
      const target = (await call(`${url}/v1/checkin`, { token, body })).body as { etag: string };
      const held = call(`${url}/v1/checkin?wait=60`, {
        token,
        body,
        headers: { 'if-none-match': `"${target.etag}"` },
      });
      for (let i = 0; i < 200; i++) {
        const m = await call(`${url}/metrics`);
        if (/^fleetwave_longpoll_waiters 1$/m.test(m.text)) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      child.kill('SIGTERM');
      assert.equal((await held).status, 304);
      assert.equal(await exited, 0, out);
      const lines = out
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { msg: string; reqId?: string });
      assert.ok(
        lines.some((l) => l.msg === 'shutting down'),
        out,
      );
      assert.ok(
        lines.some((l) => l.msg === 'stopped'),
        out,
      );
      assert.ok(
        lines.some((l) => l.msg === 'request' && l.reqId),
        'request lines carry request ids',
      );
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});
