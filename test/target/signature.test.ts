// Signature references in targets: a Release's `spec.signature` (its URL a template) or an
// artifact's own `signature` becomes the target's `artifact.signature: {url, keyRef}`; the
// reference and the cache agree, the etag covers it, the agent's check accepts exactly it, and
// a fleet written either way validates.

import assert from 'node:assert/strict';
import { hash } from 'node:crypto';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { checkTarget } from '../../agent/target.ts';
import type { FleetModel, SignatureRef } from '../../core/fleet/model.ts';
import {
  expandSignatureUrl,
  signatureOf,
  signatureUrlProblems,
} from '../../core/fleet/signature.ts';
import { validateFleet } from '../../core/fleet/validate.ts';
import { TargetCache } from '../../core/target/cache.ts';
import { etagOf } from '../../core/target/etag.ts';
import type { Agent, Target } from '../../core/target/model.ts';
import { renderTarget } from '../../core/target/render.ts';
import { readFleetDirectory } from '../../source/directory.ts';
import { REPO_ROOT } from '../helpers/cli.ts';
import { fleetModel } from './fleets.ts';

const LINUX: Agent = { id: 'web-1', labels: { os: 'linux', arch: 'amd64' } };
const ARM: Agent = { id: 'web-2', labels: { os: 'linux', arch: 'arm64' } };

/** The test fleet with signatures: the release's and, per os/arch, an artifact's own. */
function signedModel(
  release: SignatureRef | undefined,
  own: Record<string, SignatureRef> = {},
): FleetModel {
  const model = fleetModel({
    artifacts: [
      { os: 'linux', arch: 'amd64' },
      { os: 'linux', arch: 'arm64' },
    ],
  });
  const spec = model.releases[0]!.spec;
  if (release) spec.signature = release;
  for (const a of spec.artifacts) {
    a.sha256 = hash('sha256', `${a.os}/${a.arch}`, 'hex'); // hex, as agents require
    const sig = own[`${a.os}/${a.arch}`];
    if (sig) a.signature = sig;
  }
  return model;
}

/** Renders with the reference and the cache; they must agree, to the JSON text. */
function target(model: FleetModel, agent: Agent): Target {
  const reference = renderTarget(model, 'rev-1', agent);
  const cache = new TargetCache(model, 'rev-1');
  const cached = cache.render(agent);
  assert.deepEqual(cached, reference);
  assert.ok(reference.ok && cached.ok, reference.ok ? '' : reference.error.message);
  assert.equal(cache.json(cached.target), JSON.stringify(reference.target));
  return reference.target;
}

describe('signature URL templates', () => {
  const artifact = {
    os: 'linux',
    arch: 'arm64',
    url: 'https://dl.example/a_linux_arm64.tar.gz',
    sha256: 'f'.repeat(64),
  };

  it('fills in the artifact, leaves escapes and plain URLs alone', () => {
    assert.equal(
      expandSignatureUrl('${artifact.url}.sig', artifact),
      'https://dl.example/a_linux_arm64.tar.gz.sig',
    );
    assert.equal(
      expandSignatureUrl(
        'https://sig.example/${ artifact.os }-${artifact.arch}/${artifact.sha256}',
        artifact,
      ),
      `https://sig.example/linux-arm64/${'f'.repeat(64)}`,
    );
    assert.equal(
      expandSignatureUrl('https://x/$${artifact.os}', artifact),
      'https://x/${artifact.os}',
    );
    assert.equal(expandSignatureUrl('https://x/one.sig', artifact), 'https://x/one.sig');
  });

  it('names every token that is not a placeholder', () => {
    assert.deepEqual(signatureUrlProblems('${artifact.url}.sig $${literal}'), []);
    assert.deepEqual(
      signatureUrlProblems('${agent.id}/${artifact.version}/${artifact.os').map((p) => p.raw),
      ['${agent.id}', '${artifact.version}', '${artifact.os'],
    );
  });

  it('uses the artifact own signature first, then the release one; keyRef defaults to "default"', () => {
    const spec = { signature: { url: '${artifact.url}.sig' } };
    assert.deepEqual(signatureOf(spec, artifact), {
      url: 'https://dl.example/a_linux_arm64.tar.gz.sig',
      keyRef: 'default',
    });
    assert.deepEqual(
      signatureOf(spec, { ...artifact, signature: { url: 'https://o/x.sig', keyRef: 'k' } }),
      { url: 'https://o/x.sig', keyRef: 'k' },
    );
    assert.equal(signatureOf({}, artifact), undefined);
  });
});

describe('targets of signed releases', () => {
  it('carry no signature key at all when the release has none (etags unchanged)', () => {
    const t = target(signedModel(undefined), LINUX);
    assert.equal(Object.hasOwn(t.artifact, 'signature'), false);
    assert.equal(JSON.stringify(t.artifact).includes('signature'), false);
  });

  it('carry each artifact its own signature URL, from the release template', () => {
    const model = signedModel({ url: '${artifact.url}.sig', keyRef: 'release-2026' });
    const linux = target(model, LINUX);
    const arm = target(model, ARM);
    assert.deepEqual(linux.artifact, {
      url: 'https://downloads.example/agent/1.0.0/agent_linux_amd64.tar.gz',
      sha256: linux.artifact.sha256,
      signature: {
        url: 'https://downloads.example/agent/1.0.0/agent_linux_amd64.tar.gz.sig',
        keyRef: 'release-2026',
      },
    });
    assert.equal(
      arm.artifact.signature?.url,
      'https://downloads.example/agent/1.0.0/agent_linux_arm64.tar.gz.sig',
    );
    // Frozen like the rest of the target.
    assert.ok(Object.isFrozen(linux.artifact.signature));
  });

  it("give an artifact's own signature precedence over the release's", () => {
    const model = signedModel(
      { url: '${artifact.url}.sig' },
      { 'linux/arm64': { url: 'https://sigs.example/arm.sig', keyRef: 'arm-key' } },
    );
    assert.deepEqual(target(model, ARM).artifact.signature, {
      url: 'https://sigs.example/arm.sig',
      keyRef: 'arm-key',
    });
    assert.deepEqual(target(model, LINUX).artifact.signature?.keyRef, 'default');
  });

  it('change the etag when the signature reference changes, and only then', () => {
    const plain = target(signedModel(undefined), LINUX);
    const a = target(signedModel({ url: '${artifact.url}.sig', keyRef: 'k1' }), LINUX);
    const b = target(signedModel({ url: '${artifact.url}.sig', keyRef: 'k2' }), LINUX);
    const c = target(signedModel({ url: '${artifact.url}.asc', keyRef: 'k1' }), LINUX);
    assert.equal(new Set([plain.etag, a.etag, b.etag, c.etag]).size, 4);
    assert.equal(
      a.etag,
      target(signedModel({ url: '${artifact.url}.sig', keyRef: 'k1' }), LINUX).etag,
    );
    assert.equal(a.etag, etagOf(a));
  });

  it("are accepted by the agent's check as they are, and refused when altered", () => {
    const t = target(signedModel({ url: '${artifact.url}.sig', keyRef: 'release' }), LINUX);
    const wire = JSON.parse(JSON.stringify(t)) as Record<string, unknown>;
    const checked = checkTarget(wire, t.etag);
    assert.ok(checked.ok, checked.ok ? '' : checked.problem);
    assert.deepEqual(checked.target, t);
    const altered = (signature: unknown) => ({
      ...wire,
      artifact: { ...(wire.artifact as object), signature },
    });
    // Pointing the agent at another signature or key: the etag no longer matches.
    for (const signature of [
      { url: 'https://evil.example/x.sig', keyRef: 'release' },
      { url: t.artifact.signature!.url, keyRef: 'attacker' },
    ])
      assert.match(
        String((checkTarget(altered(signature)) as { problem: string }).problem),
        /etag/,
      );
    // Keys the agent does not know are not part of what it checks or keeps (as elsewhere).
    const extra = checkTarget(altered({ ...t.artifact.signature, extra: 1 }), t.etag);
    assert.ok(extra.ok);
    assert.deepEqual(extra.target, t);
    // Dropping the signature in transit is caught like any change.
    const stripped = { ...wire, artifact: { url: t.artifact.url, sha256: t.artifact.sha256 } };
    assert.match(String((checkTarget(stripped) as { problem: string }).problem), /etag/);
    const problems: Array<[unknown, RegExp]> = [
      ['https://x/y.sig', /artifact.signature is not an object/],
      [{ url: 'ftp://x/y.sig', keyRef: 'k' }, /artifact.signature.url is not an http\(s\) URL/],
      [{ url: 'https://x/y.sig' }, /artifact.signature.keyRef is not a key name/],
      [{ url: 'https://x/y.sig', keyRef: '' }, /artifact.signature.keyRef is not a key name/],
    ];
    for (const [signature, problem] of problems)
      assert.match(
        String((checkTarget(altered(signature)) as { problem: string }).problem),
        problem,
      );
  });
});

describe('the example fleet', () => {
  it('signs 2.5.0 per artifact ("${artifact.url}.sig", key acme-release-2026)', async () => {
    const result = validateFleet(await readFleetDirectory('fleet', { cwd: REPO_ROOT }));
    assert.ok(result.model, 'the example fleet is valid');
    const model = result.model;
    const at250 = {
      ...model,
      fleet: { ...model.fleet, spec: { ...model.fleet.spec, version: '2.5.0' } },
    };
    const t = target(at250, {
      id: 'web-1',
      labels: { env: 'prod', os: 'windows', arch: 'arm64', region: 'eu-west-1' },
    });
    assert.deepEqual(t.artifact.signature, {
      url: 'https://downloads.acme.example/metrics-agent/2.5.0/metrics-agent_2.5.0_windows_arm64.zip.sig',
      keyRef: 'acme-release-2026',
    });
    // 2.4.0, the served version, is unsigned: its targets and etags are as before.
    assert.equal(
      target(model, {
        id: 'web-1',
        labels: { env: 'prod', os: 'linux', arch: 'amd64', region: 'eu-west-1' },
      }).artifact.signature,
      undefined,
    );
  });

  it('validates with both forms: a release template and an artifact signature of its own', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleetwave-signed-fleet-'));
    try {
      await cp(join(REPO_ROOT, 'fleet'), join(dir, 'fleet'), { recursive: true });
      const file = join(dir, 'fleet/releases/2.5.0.yaml');
      const text = await readFile(file, 'utf8');
      const own = text.replace(
        '      sha256: 2b87408f74f35373bdb9a63a94eff712c3fb39228a7394853cba6d8829d6d77a\n',
        '$&      signature:\n        url: https://signatures.acme.example/2.5.0/windows-arm64.sig\n        keyRef: windows-2026\n',
      );
      assert.notEqual(own, text);
      await writeFile(file, own);
      const result = validateFleet(await readFleetDirectory('fleet', { cwd: dir }));
      assert.deepEqual(result.diagnostics, []);
      // One fixed URL is fine for a release of one artifact (or when the others sign their own).
      const single = own.replace(
        '${artifact.url}.sig',
        'https://signatures.acme.example/2.5.0/one.sig',
      );
      await writeFile(file, single);
      const shared = validateFleet(await readFleetDirectory('fleet', { cwd: dir }));
      assert.deepEqual(
        shared.diagnostics.map((d) => d.message),
        [
          `3 artifacts would share this signature file, but a signature covers one artifact's bytes: name each artifact's file (e.g. "\${artifact.url}.sig") or give each artifact its own signature`,
        ],
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
