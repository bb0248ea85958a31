// Release signatures checked by the agent (agent/signature.ts) with real keys made here (ECDSA
// P-256 as cosign makes them, and Ed25519): signature files and trusted keys, then
// verifyArtifactSignature against a local server. Signatures made by openssl are checked too,
// and openssl checks ours, when it is installed.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createPrivateKey, generateKeyPairSync, sign } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Agent } from '../../agent/client.ts';
import {
  decodeSignature,
  trustedKey,
  trustedKeysOf,
  verifyArtifactSignature,
  type VerifyOptions,
} from '../../agent/signature.ts';
import { freePort } from '../reconciler/helpers.ts';
import { ArtifactServer, close, listen, sha256 } from './helpers.ts';
import {
  ARTIFACT,
  TRUSTED,
  cosignSign,
  edwards,
  expectRefusal,
  pem,
  release,
  stranger,
} from './fixtures/signing.ts';

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
