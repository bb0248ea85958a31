// The agent with trusted keys against a reconciler of one target: only an artifact whose
// signature verifies with the trusted key its Release names is applied. Every refusal keeps the
// last good target, never runs --apply and is reported as failed.

import assert from 'node:assert/strict';
import { sign } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TargetCache } from '../../agent/cache.ts';
import { Agent, type AgentOptions } from '../../agent/client.ts';
import type { AgentError } from '../../agent/errors.ts';
import { etagOf } from '../../core/target/etag.ts';
import type { Target, TargetArtifact } from '../../core/target/model.ts';
import { makeTarget } from './fixtures/targets.ts';
import { ArtifactServer, Events, close, listen, sha256 } from './helpers.ts';
import { until } from '../helpers/until.ts';
import { ARTIFACT, TRUSTED, cosignSign, edwards, release, stranger } from './fixtures/signing.ts';

/** A reconciler of one target: enroll, then the target until the agent holds (or gave up) it. */
class FakeReconciler {
  target: Target;
  readonly checkins: Array<Record<string, unknown>> = [];
  readonly server: Server;
  port = 0;

  constructor(target: Target) {
    this.target = target;
    this.server = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        if (req.url === '/v1/enroll') {
          res.writeHead(200, { 'content-type': 'application/json' }).end('{"token":"v1.x.y"}');
          return;
        }
        this.checkins.push(JSON.parse(body) as Record<string, unknown>);
        const has = String(req.headers['if-none-match'] ?? '');
        if (has.includes(this.target.etag)) {
          setTimeout(() => res.writeHead(304, { etag: `"${this.target.etag}"` }).end(), 20);
          return;
        }
        res
          .writeHead(200, { 'content-type': 'application/json', etag: `"${this.target.etag}"` })
          .end(JSON.stringify(this.target));
      });
    });
  }

  async start(): Promise<this> {
    this.port = await listen(this.server);
    return this;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }
}

/** A target for `artifact`, with a valid etag. */
function targetFor(artifact: TargetArtifact, version = '3.0.0'): Target {
  const content = { version, artifact, config: { mark: version }, pollAfterSeconds: 30 };
  return { ...content, etag: etagOf(content), revision: 'c'.repeat(40), wave: 'everyone' };
}

describe('the agent with trusted keys', () => {
  let dir: string;
  let artifacts: ArtifactServer;
  const PREVIOUS = makeTarget('previous');
  let n = 0;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetwave-signed-agent-'));
    artifacts = await new ArtifactServer().start();
    artifacts.files.set('/agent', ARTIFACT);
    artifacts.files.set('/agent.sig', cosignSign(ARTIFACT, release.privateKey));
    artifacts.files.set('/agent.ed.sig', sign(null, ARTIFACT, edwards.privateKey));
    artifacts.files.set('/agent.stranger.sig', cosignSign(ARTIFACT, stranger.privateKey));
    const tampered = Buffer.from(sign('sha256', ARTIFACT, release.privateKey));
    tampered[8]! ^= 0x40;
    artifacts.files.set('/agent.tampered.sig', Buffer.from(tampered.toString('base64')));
    artifacts.files.set('/agent.huge.sig', Buffer.alloc(20_000, 'A'));
  });
  after(async () => {
    await artifacts.stop();
    await rm(dir, { recursive: true, force: true });
  });

  /**
   * Runs an agent that holds PREVIOUS against a reconciler serving `target`, until it applies
   * the target or gives up on it; returns what happened.
   */
  async function run(target: Target, options: Partial<AgentOptions> = {}) {
    const reconciler = await new FakeReconciler(target).start();
    const cacheDir = join(dir, `agent-${n++}`);
    const cache = new TargetCache(cacheDir);
    await cache.prepare();
    await cache.write({ target: PREVIOUS, artifactPath: '/installed', appliedAt: 1 });
    const events = new Events();
    const applied: string[] = [];
    const agent = new Agent({
      urls: [reconciler.url],
      id: 'web-1',
      labels: { os: 'linux', arch: 'amd64' },
      cacheDir,
      apply: async (context) => {
        applied.push(context.target.etag);
        assert.deepEqual(await readFile(context.artifactPath), ARTIFACT);
      },
      trustedKeys: TRUSTED,
      maxApplyAttempts: 1,
      waitSeconds: 0,
      timeoutMs: 2_000,
      backoff: { baseMs: 10, capMs: 50 },
      onEvent: events.push,
      ...options,
    });
    try {
      await agent.start();
      const outcome = await Promise.race([
        events.next('applied', () => true, 0),
        events.next('apply-failed', (e) => e.gaveUp, 0),
      ]);
      // The next check-in reports what happened.
      const since = reconciler.checkins.length;
      await until(() => reconciler.checkins.length > since, 'the agent checks in again');
      const report = reconciler.checkins.at(-1)!;
      const stored = await cache.read();
      return { outcome, applied, agent: agent.status(), report, stored: stored.state?.target };
    } finally {
      await agent.stop();
      await close(reconciler.server);
    }
  }

  const signed = (sig: string, keyRef = 'release'): TargetArtifact => ({
    url: artifacts.url('/agent'),
    sha256: sha256(ARTIFACT),
    signature: { url: artifacts.url(sig), keyRef },
  });

  async function refused(target: Target, message: RegExp, options: Partial<AgentOptions> = {}) {
    const r = await run(target, options);
    assert.equal(r.outcome.kind, 'apply-failed');
    const error = (r.outcome as { error: AgentError }).error;
    assert.equal(error.code, 'ARTIFACT_SIGNATURE_INVALID', error.message);
    assert.match(error.message, message);
    assert.deepEqual(r.applied, [], '--apply never ran');
    assert.equal(r.agent.current?.etag, PREVIOUS.etag, 'the last good target is kept');
    assert.equal(r.stored?.etag, PREVIOUS.etag, 'and stays on disk');
    const health = r.report.health as {
      status: string;
      message: string;
      failedTarget: { etag: string };
    };
    assert.equal(health.status, 'failed');
    assert.equal(health.failedTarget.etag, target.etag);
    assert.match(health.message, /^ARTIFACT_SIGNATURE_INVALID: /);
    assert.deepEqual(r.report.current, { etag: PREVIOUS.etag, version: PREVIOUS.version });
  }

  it('applies an artifact whose ECDSA signature verifies, and keeps it', async () => {
    const target = targetFor(signed('/agent.sig'));
    const before = artifacts.requests.get('/agent.sig') ?? 0;
    const r = await run(target);
    assert.equal(r.outcome.kind, 'applied');
    assert.deepEqual(r.applied, [target.etag]);
    assert.equal(r.stored?.etag, target.etag);
    assert.equal(artifacts.requests.get('/agent.sig'), before + 1, 'the signature was fetched');
    assert.deepEqual((r.report.health as { status: string }).status, 'ok');
  });

  it('applies an artifact signed with an Ed25519 key', async () => {
    const r = await run(targetFor(signed('/agent.ed.sig', 'edwards')));
    assert.equal(r.outcome.kind, 'applied');
  });

  it('refuses a tampered signature', async () => {
    await refused(
      targetFor(signed('/agent.tampered.sig')),
      /does not verify with the trusted key "release"/,
    );
  });

  it('refuses a signature by a key other than the one named', async () => {
    await refused(targetFor(signed('/agent.stranger.sig')), /does not verify/);
  });

  it('refuses a key it does not trust, without downloading the artifact', async () => {
    const before = artifacts.requests.get('/agent') ?? 0;
    await refused(
      targetFor(signed('/agent.sig', 'attacker')),
      /"attacker", which this agent does not trust/,
    );
    assert.equal(artifacts.requests.get('/agent') ?? 0, before);
  });

  it('refuses a signed artifact when it trusts no key at all', async () => {
    await refused(
      targetFor(signed('/agent.sig')),
      /it trusts no key: start it with --trusted-key release=PATH/,
      { trustedKeys: undefined },
    );
  });

  it('refuses an oversize signature file', async () => {
    await refused(
      targetFor(signed('/agent.huge.sig')),
      /20000 bytes is more than the limit of 16384/,
    );
  });

  it('refuses a signature URL that answers 404', async () => {
    await refused(targetFor(signed('/agent.nope.sig')), /agent\.nope\.sig: answered 404/);
  });

  it('with --require-signatures, refuses an unsigned artifact; without, applies it', async () => {
    const unsigned = targetFor({ url: artifacts.url('/agent'), sha256: sha256(ARTIFACT) }, '3.0.1');
    await refused(unsigned, /is not signed, and this agent requires signatures/, {
      requireSignatures: true,
    });
    const r = await run(unsigned);
    assert.equal(r.outcome.kind, 'applied');
    const signedOne = await run(targetFor(signed('/agent.sig'), '3.0.2'), {
      requireSignatures: true,
    });
    assert.equal(signedOne.outcome.kind, 'applied');
  });
});
