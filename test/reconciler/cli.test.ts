// `fleetwave serve` as people run it: refuses to start without tokens, starts with
// --insecure-local-demo, and shuts down gracefully on SIGTERM.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CLI, fleetwave } from '../helpers/cli.ts';
import { until } from '../helpers/until.ts';
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
    assert.equal(r.status, 2, 'a usage error, as in every command');
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
    assert.equal(short.status, 2);
    assert.match(short.stderr, /--enroll-token must be at least 16 characters/);
    const norepo = fleetwave(['serve', '--insecure-local-demo']);
    assert.equal(norepo.status, 2);
    assert.match(norepo.stderr, /--repo/);
  });

  it('suggests the flag that was meant, and exits 2', () => {
    const r = fleetwave(['serve', '--repo', repo.origin, '--prot', '8080']);
    assert.equal(r.status, 2);
    assert.equal(r.stderr, 'fleetwave serve: unknown option --prot; did you mean --port?\n');
  });

  it('says a port in use is in use, names --port, and exits 2', async () => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const { port } = taken.address() as { port: number };
    try {
      const r = fleetwave([
        'serve',
        '--repo',
        repo.origin,
        '--data-dir',
        `${repo.root}/data-port`,
        '--port',
        String(port),
        '--insecure-local-demo',
        '--log-level',
        'error',
      ]);
      assert.equal(r.status, 2, r.stderr);
      assert.match(
        r.stderr,
        new RegExp(
          `cannot listen on 127\\.0\\.0\\.1:${port}: the port is in use by another process; pick another with --port`,
        ),
      );
      assert.doesNotMatch(r.stderr, /unexpected error/);
    } finally {
      await new Promise((r) => taken.close(r));
    }
  });

  it("says a repository it cannot read cannot be read, in git's words, not that it serves a last good rollout", async () => {
    const port = await freePort();
    const missing = join(repo.root, 'nope.git');
    const child = spawn(
      process.execPath,
      [
        CLI,
        'serve',
        '--repo',
        missing,
        '--data-dir',
        `${repo.root}/data-nope`,
        '--port',
        String(port),
        '--insecure-local-demo',
        '--log-level',
        'warn',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const exited = new Promise((resolve) => child.once('exit', resolve));
    try {
      const line = await new Promise<{ msg: string }>((resolve, reject) => {
        let buffered = '';
        child.stdout.on('data', (c: Buffer) => {
          buffered += c.toString();
          for (const l of buffered.split('\n').filter((x) => x.startsWith('{'))) {
            const parsed = JSON.parse(l) as { msg: string };
            if (parsed.msg.includes('fleet repository')) resolve(parsed);
          }
        });
        child.once('exit', () => reject(new Error(`serve exited: ${out}`)));
      });
      assert.match(
        line.msg,
        new RegExp(`^cannot read the fleet repository ${missing.replace(/[.]/g, '\\.')}: `),
      );
      // git's whole message, not its last line alone ("and the repository exists.").
      assert.match(line.msg, /does not appear to be a git repository/);
      assert.match(
        line.msg,
        /Could not read from remote repository\. Please make sure you have the correct access rights and the repository exists\./,
      );
      assert.match(line.msg, /nothing is served until it can be read/);
      assert.doesNotMatch(line.msg, /last good/);

      // `fleetwave status` says why nothing is served, and in which field of /v1/status.
      const status = fleetwave(['status', '--url', `http://127.0.0.1:${port}`]);
      assert.equal(status.status, 0, status.stderr);
      assert.match(status.stdout, /^ready: +no, nothing is served yet$/m);
      assert.match(
        status.stdout,
        /^ERROR git\.remote\.lastError: git ls-remote failed: fatal: .*does not appear to be a git repository.* \(\d+ failed fetch(es)? in a row\)$/m,
      );
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
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
      await until(async () => (await call(`${url}/readyz`)).status === 200, 'readyz answers 200', {
        timeoutMs: 40_000,
        intervalMs: 50,
        diagnose: () => out,
      });
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
