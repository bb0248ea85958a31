// `npm start -- --once`: the embedded demo plays its story and exits 0 when it went as
// expected (a healthy change completes every wave; a bad release is rejected on the canary,
// reverted on main, and every agent is back on stable).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const DEMO = fileURLToPath(new URL('../demo/main.ts', import.meta.url));

describe('npm start -- --once', () => {
  it('plays the story and exits 0', () => {
    const r = spawnSync(process.execPath, [DEMO, '--once', '--port', '0', '--agents', '300'], {
      encoding: 'utf8',
      timeout: 280_000,
    });
    const output = `${r.stdout}${r.stderr}`;
    assert.equal(r.status, 0, output);
    assert.match(output, /completed every wave and is stable/);
    assert.match(output, /rejected on wave 0: canary: /);
    assert.match(output, /every agent runs 2\.4\.0 again/);
    assert.match(
      output,
      /main has the revert: [0-9a-f]{7} Revert "Upgrade metrics-agent to 2\.5\.0"/,
    );
    assert.match(output, /== the story went as expected/);
  });

  it('explains its options and refuses nonsense', () => {
    const help = spawnSync(process.execPath, [DEMO, '--help'], { encoding: 'utf8' });
    assert.equal(help.status, 0);
    assert.match(help.stdout, /--once/);
    const bad = spawnSync(process.execPath, [DEMO, '--agents', 'many'], { encoding: 'utf8' });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /--agents must be a whole number/);
  });
});
