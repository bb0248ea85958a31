// Release signatures, checked by the agent with real keys made here (ECDSA P-256 as cosign
// makes them, and Ed25519): the signature file is served next to the artifact from a local
// server, and only an artifact whose signature verifies with the trusted key its Release names
// is applied. Every refusal keeps the last good target, never runs --apply and is reported as
// failed. Signatures made by openssl are checked too, and openssl checks ours, when it is
// installed. Last, the whole path through a real reconciler and a real fleet repository.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createPrivateKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TargetCache } from '../../agent/cache.ts';
import { Agent, type AgentOptions } from '../../agent/client.ts';
import { isAgentError, type AgentError } from '../../agent/errors.ts';
import {
  decodeSignature,
  trustedKey,
  trustedKeysOf,
  verifyArtifactSignature,
  type VerifyOptions,
} from '../../agent/signature.ts';
import { readAgentOptions } from '../../cli/commands/agent.ts';
import { initialRolloutState } from '../../core/rollout/state.ts';
import { etagOf } from '../../core/target/etag.ts';
import type { Target, TargetArtifact } from '../../core/target/model.ts';
import {
  ENROLL_TOKEN,
  FleetRepo,
  LINUX_PROD,
  freePort,
  type Running,
} from '../reconciler/helpers.ts';
import { makeTarget } from './fixtures/targets.ts';
import {
  ArtifactServer,
  Events,
  close,
  listen,
  loopbackCertificate,
  releaseYaml,
  sha256,
  startReconcilerOn,
} from './helpers.ts';
import { until } from '../helpers/until.ts';

const ARTIFACT = Buffer.from('metrics-agent 3.0.0 binary\n'.repeat(5000));

function pem(key: KeyObject): string {
  return key.export({ type: 'spki', format: 'pem' }).toString();
}

// The release key (ECDSA P-256, as `cosign generate-key-pair` makes), another ECDSA key nobody
// trusts, and an Ed25519 key.
const release = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const stranger = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const edwards = generateKeyPairSync('ed25519');

/** `cosign sign-blob --key cosign.key FILE`: base64 of the DER ECDSA signature over SHA-256. */
function cosignSign(bytes: Buffer, key: KeyObject): Buffer {
  return Buffer.from(sign('sha256', bytes, key).toString('base64') + '\n');
}

const TRUSTED = { release: pem(release.publicKey), edwards: pem(edwards.publicKey) };

function expectRefusal(code: string, message: RegExp): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(isAgentError(e), String(e));
    assert.equal(e.code, code, e.message);
    assert.match(e.message, message);
    return true;
  };
}

describe('signature files and keys', () => {
  it('reads base64 (whitespace ignored) and raw signatures alike', () => {
    const raw = sign(null, ARTIFACT, edwards.privateKey);
    assert.deepEqual(decodeSignature(raw), raw);
    const b64 = raw.toString('base64');
    const wrapped = `${b64.slice(0, 40)}\n${b64.slice(40)}\r\n`;
    assert.deepEqual(decodeSignature(Buffer.from(wrapped)), raw);
    const der = sign('sha256', ARTIFACT, release.privateKey);
    assert.deepEqual(decodeSignature(der), der);
  });

  it('trusts ECDSA and Ed25519 public keys only, never a private key', () => {
    assert.equal(trustedKey(TRUSTED.release).asymmetricKeyType, 'ec');
    assert.equal(trustedKey(edwards.publicKey).asymmetricKeyType, 'ed25519');
    const privatePem = release.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    assert.throws(() => trustedKey(privatePem), /private key: give the agent the public key only/);
    assert.throws(() => trustedKey(release.privateKey), /private key/);
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    assert.throws(() => trustedKey(pem(rsa.publicKey)), /a rsa key: fleetwave verifies ECDSA/);
    assert.throws(() => trustedKey('not a key'), /not a PEM public key/);
    assert.throws(
      () => trustedKeysOf({ good: TRUSTED.release, bad: 'junk' }),
      /trusted key "bad": not a PEM public key/,
    );
    // The Agent refuses such keys when it is made, not at the first signed release.
    assert.throws(
      () =>
        new Agent({
          urls: ['http://127.0.0.1:1'],
          id: 'a',
          labels: {},
          cacheDir: '/nonexistent',
          trustedKeys: { k: privatePem },
        }),
      /trusted key "k": this is a private key/,
    );
  });
});

describe('verifyArtifactSignature', () => {
  let dir: string;
  let artifactPath: string;
  let server: ArtifactServer;
  let slowServer: Server;
  const keys = trustedKeysOf(TRUSTED);

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetwave-signature-'));
    artifactPath = join(dir, sha256(ARTIFACT));
    await writeFile(artifactPath, ARTIFACT);
    server = await new ArtifactServer(undefined, (req, res) => {
      if (req.url === '/busy.sig') res.writeHead(503).end('later');
      else if (req.url === '/chunked-huge.sig') {
        // No Content-Length: the limit is counted as the bytes come.
        res.writeHead(200);
        res.end(Buffer.alloc(64 * 1024, 'A'));
      } else if (req.url === '/hop.sig') res.writeHead(302, { location: '/ecdsa.sig' }).end();
      else res.writeHead(404).end();
    }).start();
    server.files.set('/ecdsa.sig', cosignSign(ARTIFACT, release.privateKey));
    server.files.set('/ed25519-raw.sig', sign(null, ARTIFACT, edwards.privateKey));
    server.files.set(
      '/ed25519-b64.sig',
      Buffer.from(sign(null, ARTIFACT, edwards.privateKey).toString('base64')),
    );
    server.files.set('/stranger.sig', cosignSign(ARTIFACT, stranger.privateKey));
    const tampered = sign('sha256', ARTIFACT, release.privateKey);
    tampered[tampered.length - 1]! ^= 0x01;
    server.files.set('/tampered.sig', Buffer.from(tampered.toString('base64')));
    server.files.set(
      '/other-bytes.sig',
      cosignSign(Buffer.from('another file'), release.privateKey),
    );
    server.files.set('/huge.sig', Buffer.alloc(17 * 1024, 'A'));
    server.files.set('/garbage.sig', Buffer.from('this is not a signature at all!\n'));
    server.files.set('/empty.sig', Buffer.alloc(0));
    // Accepts connections and never answers: the timeout must end the wait.
    slowServer = createServer(() => {});
    await listen(slowServer);
  });
  after(async () => {
    await server.stop();
    await close(slowServer);
    await rm(dir, { recursive: true, force: true });
  });

  const verify = (path: string, keyRef: string, extra: Partial<VerifyOptions> = {}) =>
    verifyArtifactSignature({
      signature: { url: server.url(path), keyRef },
      artifactPath,
      keys,
      timeoutMs: 2_000,
      ...extra,
    });

  it('accepts a cosign-style ECDSA P-256 signature (base64 DER over SHA-256)', async () => {
    await verify('/ecdsa.sig', 'release');
  });

  it('accepts Ed25519 signatures, raw or base64', async () => {
    await verify('/ed25519-raw.sig', 'edwards');
    await verify('/ed25519-b64.sig', 'edwards');
  });

  it('follows a redirect to the signature, like an artifact', async () => {
    await verify('/hop.sig', 'release');
  });

  const refusals: Array<[string, string, string, RegExp, Partial<VerifyOptions>?]> = [
    [
      'a tampered signature',
      '/tampered.sig',
      'release',
      /does not verify with the trusted key "release" \(ec\)/,
    ],
    [
      'a signature by another key',
      '/stranger.sig',
      'release',
      /does not verify with the trusted key "release"/,
    ],
    ['a signature of other bytes', '/other-bytes.sig', 'release', /does not verify/],
    [
      'an ECDSA signature checked with the Ed25519 key',
      '/ecdsa.sig',
      'edwards',
      /does not verify|not a signature/,
    ],
    ['a file that is no signature', '/garbage.sig', 'release', /does not verify|not a signature/],
    ['an empty file', '/empty.sig', 'release', /the file is empty/],
    [
      'a signature file over 16 KiB',
      '/huge.sig',
      'release',
      /17408 bytes is more than the limit of 16384/,
    ],
    [
      'an oversize file without Content-Length',
      '/chunked-huge.sig',
      'release',
      /more than the limit of 16384 bytes/,
    ],
    [
      'a signature URL that answers 404',
      '/missing.sig',
      'release',
      /signature http:\/\/127\.0\.0\.1:\d+\/missing\.sig: answered 404/,
    ],
    [
      'an artifact too large for Ed25519',
      '/ed25519-raw.sig',
      'edwards',
      /more than the 1000 an Ed25519 signature is checked for/,
      { maxEd25519Bytes: 1000 },
    ],
  ];
  for (const [name, path, keyRef, message, extra] of refusals) {
    it(`refuses ${name}: ARTIFACT_SIGNATURE_INVALID`, async () => {
      await assert.rejects(
        verify(path, keyRef, extra),
        expectRefusal('ARTIFACT_SIGNATURE_INVALID', message),
      );
    });
  }

  it('refuses a key it does not trust before fetching anything', async () => {
    const before = server.requests.get('/ecdsa.sig') ?? 0;
    await assert.rejects(
      verify('/ecdsa.sig', 'someone-else'),
      expectRefusal(
        'ARTIFACT_SIGNATURE_INVALID',
        /signed with the key "someone-else", which this agent does not trust \(it trusts "edwards", "release"\)/,
      ),
    );
    await assert.rejects(
      verifyArtifactSignature({
        signature: { url: server.url('/ecdsa.sig'), keyRef: 'default' },
        artifactPath,
        keys: new Map(),
      }),
      /it trusts no key: start it with --trusted-key default=PATH/,
    );
    assert.equal(server.requests.get('/ecdsa.sig') ?? 0, before);
  });

  it('calls a passing download failure ARTIFACT_DOWNLOAD_FAILED (5xx, no connection, timeout)', async () => {
    await assert.rejects(
      verify('/busy.sig', 'release'),
      expectRefusal('ARTIFACT_DOWNLOAD_FAILED', /signature .*busy\.sig: answered 503/),
    );
    const dead = `http://127.0.0.1:${await freePort()}/x.sig`;
    await assert.rejects(
      verifyArtifactSignature({ signature: { url: dead, keyRef: 'release' }, artifactPath, keys }),
      expectRefusal('ARTIFACT_DOWNLOAD_FAILED', /signature http:\/\/127\.0\.0\.1:\d+\/x\.sig: /),
    );
    const port = (slowServer.address() as { port: number }).port;
    await assert.rejects(
      verifyArtifactSignature({
        signature: { url: `http://127.0.0.1:${port}/x.sig`, keyRef: 'release' },
        artifactPath,
        keys,
        timeoutMs: 200,
      }),
      expectRefusal('ARTIFACT_DOWNLOAD_FAILED', /timeout/i),
    );
  });

  const hasOpenssl = (() => {
    try {
      execFileSync('openssl', ['version'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  })();

  it(
    'verifies what openssl signs, and openssl verifies what a cosign-style signer makes',
    { skip: hasOpenssl ? false : 'openssl is not installed' },
    async () => {
      const work = join(dir, 'openssl');
      await mkdir(work);
      const run = (...args: string[]) =>
        execFileSync('openssl', args, { cwd: work, stdio: 'pipe' });
      await writeFile(join(work, 'artifact'), ARTIFACT);
      // ECDSA P-256: `openssl dgst -sha256 -sign` writes raw DER; base64 of it is cosign's format.
      run('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', 'ec.key');
      run('pkey', '-in', 'ec.key', '-pubout', '-out', 'ec.pub');
      run('dgst', '-sha256', '-sign', 'ec.key', '-out', 'ec.sig', 'artifact');
      run('base64', '-in', 'ec.sig', '-out', 'ec.sig.b64');
      // Ed25519: `openssl pkeyutl -sign -rawin` signs the whole file (raw 64 bytes).
      run('genpkey', '-algorithm', 'ed25519', '-out', 'ed.key');
      run('pkey', '-in', 'ed.key', '-pubout', '-out', 'ed.pub');
      run('pkeyutl', '-sign', '-rawin', '-inkey', 'ed.key', '-in', 'artifact', '-out', 'ed.sig');
      for (const name of ['ec.sig', 'ec.sig.b64', 'ed.sig'])
        server.files.set(`/openssl/${name}`, await readFile(join(work, name)));
      const opensslKeys = trustedKeysOf({
        ec: await readFile(join(work, 'ec.pub'), 'utf8'),
        ed: await readFile(join(work, 'ed.pub'), 'utf8'),
      });
      for (const [name, keyRef] of [
        ['ec.sig', 'ec'],
        ['ec.sig.b64', 'ec'],
        ['ed.sig', 'ed'],
      ] as const) {
        await verifyArtifactSignature({
          signature: { url: server.url(`/openssl/${name}`), keyRef },
          artifactPath,
          keys: opensslKeys,
        });
      }
      // The other way: openssl accepts the signature this test makes as cosign would.
      await writeFile(join(work, 'ours.pub'), TRUSTED.release);
      await writeFile(
        join(work, 'ours.sig'),
        decodeSignature(cosignSign(ARTIFACT, release.privateKey)),
      );
      const out = run(
        'dgst',
        '-sha256',
        '-verify',
        'ours.pub',
        '-signature',
        'ours.sig',
        'artifact',
      );
      assert.match(out.toString(), /Verified OK/);
      // And a signature openssl makes with a key nobody trusts is refused.
      await assert.rejects(
        verifyArtifactSignature({
          signature: { url: server.url('/openssl/ec.sig'), keyRef: 'release' },
          artifactPath,
          keys,
        }),
        expectRefusal('ARTIFACT_SIGNATURE_INVALID', /does not verify/),
      );
      // The openssl private key is not welcome on an agent.
      assert.throws(
        () => trustedKey(createPrivateKey(execFileSync('cat', [join(work, 'ec.key')]))),
        /private key/,
      );
    },
  );
});

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

describe('fleetwave agent --trusted-key, --require-signatures', () => {
  let dir: string;
  const io = (cwd: string) => ({ cwd, env: {}, stdout: () => {}, stderr: () => {} });
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetwave-keys-'));
    await writeFile(join(dir, 'cosign.pub'), TRUSTED.release);
    await writeFile(join(dir, 'ed.pub'), TRUSTED.edwards);
    await writeFile(
      join(dir, 'cosign.key'),
      release.privateKey.export({ type: 'pkcs8', format: 'pem' }),
    );
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const args = (...rest: string[]) => ['--url', 'http://127.0.0.1:1', '--id', 'a', ...rest];

  it('reads each key under its name (a bare path is "default")', async () => {
    const options = await readAgentOptions(
      args(
        '--trusted-key',
        'release-2026=cosign.pub',
        '--trusted-key',
        'ed.pub',
        '--require-signatures',
      ),
      io(dir),
    );
    assert.deepEqual(Object.keys(options!.trustedKeys!).sort(), ['default', 'release-2026']);
    assert.equal(options!.trustedKeys!['release-2026'], TRUSTED.release);
    assert.equal(options!.requireSignatures, true);
    const plain = await readAgentOptions(args(), io(dir));
    assert.equal(plain!.trustedKeys, undefined);
    assert.equal(plain!.requireSignatures, undefined);
  });

  const usage: Array<[string[], RegExp]> = [
    [['--trusted-key', 'k=missing.pub'], /--trusted-key: cannot read missing\.pub/],
    [['--trusted-key', 'k=cosign.key'], /--trusted-key k: cosign\.key: this is a private key/],
    [['--trusted-key', '=cosign.pub'], /"=cosign\.pub" is not NAME=PATH/],
    [['--trusted-key', 'k=cosign.pub', '--trusted-key', 'k=ed.pub'], /the name "k" is given twice/],
    [['--require-signatures'], /--require-signatures needs a --trusted-key NAME=PATH/],
  ];
  for (const [extra, message] of usage) {
    it(`refuses ${extra.join(' ')}: USAGE`, async () => {
      await assert.rejects(readAgentOptions(args(...extra), io(dir)), (e: unknown) => {
        assert.equal((e as { code?: string }).code, 'USAGE');
        assert.match((e as Error).message, message);
        return true;
      });
    });
  }
});

describe('signed releases through a real reconciler', { timeout: 120_000 }, () => {
  const tls = loopbackCertificate();
  let repo: FleetRepo;
  let artifacts: ArtifactServer;
  let server: Running | undefined;
  let work: string;
  let agent: Agent | undefined;
  const V30 = Buffer.from('metrics-agent 3.0.0 binary\n'.repeat(3000));
  const V31 = Buffer.from('metrics-agent 3.1.0 binary\n'.repeat(3000));

  /** A Release for `version` signed per artifact (`${artifact.url}.sig`), made stable. */
  async function signedRelease(version: string): Promise<void> {
    const yaml =
      releaseYaml(version, artifacts.url(`/${version}`), version === '3.0.0' ? V30 : V31) +
      '  signature:\n    url: ${artifact.url}.sig\n    keyRef: release-2026\n';
    const fleet = await repo.read('fleet/fleet.yaml');
    const commit = await repo.commit(
      {
        [`fleet/releases/${version}.yaml`]: yaml,
        'fleet/fleet.yaml': fleet.replace(/^ {2}version: .*$/m, `  version: ${version}`),
      },
      `roll out ${version}`,
    );
    if (server) await server.app.reconciler.sync.sync();
    if (repo.stateTip() !== undefined)
      repo.writeState(initialRolloutState(commit), `test: ${version} is stable`);
    if (server) await server.app.reconciler.sync.sync();
  }

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'fleetwave-signed-e2e-'));
    repo = await FleetRepo.create();
    artifacts = await new ArtifactServer(tls).start();
    artifacts.files.set('/3.0.0', V30);
    artifacts.files.set('/3.0.0.sig', cosignSign(V30, release.privateKey));
    artifacts.files.set('/3.1.0', V31);
    // 3.1.0's signature is made with a key the agents do not trust.
    artifacts.files.set('/3.1.0.sig', cosignSign(V31, stranger.privateKey));
    // This test is about signatures, not secrets: the base layer's Vault secretRef goes (an
    // agent would need a Vault to resolve it before --apply).
    const base = await repo.read('fleet/config/00-base.yaml');
    const withoutSecret = base.replace(/^ {6}apiKey:\n {8}secretRef:\n(?: {10}.*\n)+/m, '');
    assert.notEqual(withoutSecret, base, 'the example base layer has its apiKey secretRef');
    await repo.commit({ 'fleet/config/00-base.yaml': withoutSecret }, 'no secrets here');
    await signedRelease('3.0.0');
    server = await startReconcilerOn(repo, await freePort());
  });
  after(async () => {
    await agent?.stop();
    await server?.close();
    await artifacts?.stop();
    await tls.dispatcher.close();
    await repo?.cleanup();
    await rm(work, { recursive: true, force: true });
  });

  it('applies a correctly signed release and refuses a badly signed one, keeping the first', async () => {
    const events = new Events();
    agent = new Agent({
      urls: [server!.url],
      id: 'web-1',
      labels: LINUX_PROD,
      enrollToken: ENROLL_TOKEN,
      cacheDir: join(work, 'cache'),
      apply: `mkdir -p "${work}/installed" && cp "$FLEETWAVE_ARTIFACT" "${work}/installed/binary"`,
      dispatcher: tls.dispatcher,
      trustedKeys: { 'release-2026': TRUSTED.release },
      requireSignatures: true,
      maxApplyAttempts: 2,
      waitSeconds: 1,
      timeoutMs: 5_000,
      backoff: { baseMs: 20, capMs: 300 },
      onEvent: events.push,
    });
    await agent.start();
    const applied = await events.next('applied', () => true, 0);
    assert.equal(applied.target.version, '3.0.0');
    assert.deepEqual(applied.target.artifact.signature, {
      url: `${artifacts.url('/3.0.0')}.sig`,
      keyRef: 'release-2026',
    });
    assert.deepEqual(await readFile(join(work, 'installed/binary')), V30);
    await until(
      () => server!.app.reconciler.agents.get('web-1')?.current?.etag === applied.target.etag,
      'web-1 reports 3.0.0',
    );

    const since = events.all.length;
    await signedRelease('3.1.0');
    const failed = await events.next('apply-failed', (e) => e.target.version === '3.1.0', since);
    assert.equal(failed.error.code, 'ARTIFACT_SIGNATURE_INVALID');
    assert.match(
      failed.error.message,
      /3\.1\.0\.sig does not verify with the trusted key "release-2026"/,
    );
    assert.equal(agent.current?.etag, applied.target.etag, 'the last good target is kept');
    assert.deepEqual(await readFile(join(work, 'installed/binary')), V30, '--apply did not run');
    const cached = await new TargetCache(join(work, 'cache')).read();
    assert.equal(cached.state?.target.version, '3.0.0');
    await until(
      () => server!.app.reconciler.agents.get('web-1')?.health?.status === 'failed',
      'web-1 reports failed',
    );
    const record = server!.app.reconciler.agents.get('web-1')!;
    assert.equal(record.current?.etag, applied.target.etag);
    assert.equal((record.health!.failedTarget as { etag: string }).etag, failed.target.etag);
    assert.match(String(record.health!.message), /ARTIFACT_SIGNATURE_INVALID/);
    assert.ok(existsSync(join(work, 'installed/binary')));
  });
});
