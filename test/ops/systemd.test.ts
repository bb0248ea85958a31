// systemd-analyze security (offline, Debian's systemd) on the shipped agent unit, as shipped
// and with the built-in installer's directives uncommented (User=, ReadWritePaths=): the
// exposure stays "OK" or better.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';

const UNIT = fileURLToPath(
  new URL('../../deploy/systemd/fleetwave-agent.service', import.meta.url),
);
const SKIP =
  spawnSync('sh', ['-c', 'command -v systemd-analyze']).status === 0
    ? false
    : 'systemd-analyze is not installed';

/** The overall exposure level and its word ("1.8 OK"). */
async function exposure(unitText: string): Promise<{ level: number; word: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'fleetwave-unit-'));
  try {
    const path = join(dir, 'fleetwave-agent.service');
    await writeFile(path, unitText);
    const run = spawnSync('systemd-analyze', ['security', '--offline=true', path], {
      encoding: 'utf8',
    });
    const m = /Overall exposure level for \S+: ([\d.]+) (\S+)/.exec(run.stdout);
    assert.ok(m, `no exposure level in:\n${run.stdout}\n${run.stderr}`);
    return { level: Number(m[1]), word: m[2]! };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('the agent unit under systemd-analyze security', { skip: SKIP }, () => {
  it('is OK or better as shipped and with the installer', async () => {
    const shipped = await readFile(UNIT, 'utf8');
    const installer = shipped
      .replace(/^#User=fleetwave-agent$/m, 'User=fleetwave-agent')
      .replace(/^#ReadWritePaths=/m, 'ReadWritePaths=');
    assert.notEqual(installer, shipped, 'the installer directives are in the unit, commented');
    for (const text of [shipped, installer]) {
      const { level, word } = await exposure(text);
      assert.ok(['OK', 'SAFE'].includes(word) && level <= 4.9, `exposure ${level} ${word}`);
    }
  });
});
