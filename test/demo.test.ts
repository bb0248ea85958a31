// `npm start -- --once`: the embedded demo plays its story and exits 0 when it went as
// expected (a healthy change completes every wave; a bad release is rejected on the canary,
// reverted on main, and every agent is back on stable).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { README, fencedBlocks } from './helpers/readme.ts';

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

    // The README's excerpt is what the demo prints, line by line and in order; only commit
    // ids, times and counts may differ from run to run.
    const excerpt = fencedBlocks(README).find((b) => b.lines[0]?.startsWith('== 2. a bad release'));
    assert.ok(excerpt, "the README's demo excerpt");
    const printed = output.split('\n');
    let at = 0;
    for (const line of excerpt.lines) {
      const escape = (t: string) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      const pattern = new RegExp(
        `^${line
          .split(/(\b[0-9a-f]{7}\b|\d+)/)
          .map((t, i) => (i % 2 === 0 ? escape(t) : /^\d+$/.test(t) ? '\\d+' : '[0-9a-f]{7}'))
          .join('')}$`,
      );
      const found = printed.findIndex((l, i) => i >= at && pattern.test(l));
      assert.ok(found >= 0, `the demo printed no line like ${JSON.stringify(line)}:\n${output}`);
      at = found + 1;
    }
  });

  it('says a port in use is in use and names --port, not only an exit code', async () => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const { port } = taken.address() as { port: number };
    try {
      const r = spawnSync(process.execPath, [DEMO, '--once', '--port', String(port)], {
        encoding: 'utf8',
        timeout: 120_000,
      });
      // A failed story keeps its directory for inspection; this test removes it.
      const kept = /^kept (\S+)$/m.exec(r.stdout)?.[1];
      if (kept) await rm(kept, { recursive: true, force: true });
      assert.equal(r.status, 1);
      assert.match(
        r.stdout,
        new RegExp(
          `the reconciler did not start: cannot listen on 127\\.0\\.0\\.1:${port}: the port is in use by another process; pick another with --port`,
        ),
      );
      assert.doesNotMatch(r.stdout, /exited with 70/);
    } finally {
      await new Promise((r) => taken.close(r));
    }
  });

  it('explains its options and refuses nonsense', () => {
    const help = spawnSync(process.execPath, [DEMO, '--help'], { encoding: 'utf8' });
    assert.equal(help.status, 0);
    assert.match(help.stdout, /--once/);
    const bad = spawnSync(process.execPath, [DEMO, '--agents', 'many'], { encoding: 'utf8' });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /--agents must be a whole number/);
    const typo = spawnSync(process.execPath, [DEMO, '--agnets', '300'], { encoding: 'utf8' });
    assert.equal(typo.status, 2);
    assert.equal(typo.stderr, 'npm start: unknown option --agnets; did you mean --agents?\n');
  });
});
