// The supervisor stops what a SIGKILLed agent left running: the group its pid file names, and a
// group whose leader carries the supervisor's tag though no pid file names it (the kill landed
// between a spawn and the pid file's write). Real processes; nothing else is touched.

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Supervisor, alive } from '../../agent/install/supervise.ts';
import { until } from '../helpers/until.ts';

/** A process that sleeps, as a killed agent's child would: its own group, reparented later. */
function sleeper(env: NodeJS.ProcessEnv, detached: boolean): ChildProcess {
  const child = spawn('/bin/sh', ['-c', 'exec sleep 300'], { env, detached, stdio: 'ignore' });
  child.unref();
  return child;
}

describe('the supervisor reaps orphans', () => {
  let dir: string;
  const started: ChildProcess[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fw-supervise-'));
  });

  after(async () => {
    for (const c of started) if (c.pid && alive(c.pid)) process.kill(c.pid, 'SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });

  it('stops a tagged group no pid file names, and leaves untagged processes alone', async () => {
    const tag = `FLEETWAVE_INSTALL_DIR=${dir}`;
    const env = { PATH: process.env.PATH, FLEETWAVE_INSTALL_DIR: dir };
    const orphan = sleeper(env, true);
    // Another install directory's child, and a tagged process inside an untagged group (ours).
    const other = sleeper({ PATH: process.env.PATH, FLEETWAVE_INSTALL_DIR: `${dir}-other` }, true);
    const inOurGroup = sleeper(env, false);
    started.push(orphan, other, inOurGroup);
    await until(
      () => [orphan, other, inOurGroup].every((c) => c.pid && alive(c.pid)),
      'the sleepers run',
    );

    const supervisor = new Supervisor({
      command: 'true',
      pidFile: join(dir, '.run.pid'),
      tag,
      log: () => {},
      stopTimeoutMs: 2_000,
    });
    await supervisor.reapOrphan();
    await until(() => !alive(orphan.pid!), 'the tagged orphan is stopped', { timeoutMs: 5_000 });
    assert.ok(alive(other.pid!), "another install directory's child runs on");
    assert.ok(alive(inOurGroup.pid!), 'a group whose leader is not tagged is never signalled');
  });

  it('stops the group its pid file names when the start time matches, not a reused pid', async () => {
    const child = sleeper({ PATH: process.env.PATH }, true);
    started.push(child);
    await until(() => child.pid && alive(child.pid), 'the child runs');
    const pidFile = join(dir, '.run.pid');
    const supervisor = new Supervisor({ command: 'true', pidFile, log: () => {} });

    await writeFile(pidFile, `${child.pid} 1\n`); // another process's start time: a reused pid
    await supervisor.reapOrphan();
    assert.ok(alive(child.pid!), 'a pid whose start time differs is not ours');

    const stat = await readFile(`/proc/${child.pid}/stat`, 'utf8');
    const startTime = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
    await writeFile(pidFile, `${child.pid} ${startTime}\n`);
    await supervisor.reapOrphan();
    await until(() => !alive(child.pid!), 'the named group is stopped', { timeoutMs: 5_000 });
  });
});
