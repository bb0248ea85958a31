// `fleetwave agent --trusted-key NAME=PATH` and `--require-signatures`: keys read under their
// names, and every misuse refused as USAGE.

import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readAgentOptions } from '../../cli/commands/agent.ts';
import { TRUSTED, release } from './fixtures/signing.ts';

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
