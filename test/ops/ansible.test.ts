// The Ansible role deploy/ansible/roles/fleetwave_agent run for real with Debian's ansible,
// `connection: local`, into a scratch prefix (fleetwave_root): a release tarball built from this
// repository, the enrollment token from a real vault. Twice: the second run changes nothing.
// Then the installed unit's ExecStart is run with the installed environment file against a real
// reconciler, and the agent enrolls. Then into a second prefix with trusted release keys,
// --require-signatures, a --secret-dir and Vault settings, and that agent enrolls too; then with
// the built-in installer. The scratch host they run on is ansible-rig.ts.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync } from 'node:fs';
import { lstat, mkdir, readFile, readlink, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ENROLL_TOKEN } from '../reconciler/helpers.ts';
import {
  AGENT_ID,
  AnsibleRig,
  ROOT,
  SIGNED_AGENT_ID,
  SKIP,
  VAULT_TOKEN,
  directives,
  recapOf,
} from './ansible-rig.ts';

describe('the Ansible role fleetwave_agent', { skip: SKIP }, () => {
  const rig = new AnsibleRig();
  before(() => rig.start());
  after(() => rig.stop());

  it('passes ansible-playbook --syntax-check', () => {
    const run = rig.playbook('--syntax-check');
    assert.equal(run.status, 0, run.output);
  });

  it('in check mode on a fresh host, reports changes and writes nothing', async () => {
    const run = rig.playbook('--check');
    assert.equal(run.status, 0, run.output);
    const recap = recapOf(run.output);
    assert.equal(recap.failed, 0);
    assert.ok(recap.changed > 0, run.output);
    assert.equal(existsSync(join(rig.prefix, 'etc/fleetwave/agent.env')), false);
  });

  it('installs the agent, then a second run changes nothing', async () => {
    const first = rig.playbook();
    assert.equal(first.status, 0, first.output);
    const one = recapOf(first.output);
    assert.equal(one.failed, 0);
    assert.equal(one.unreachable, 0);
    assert.ok(one.changed > 0, first.output);
    assert.ok(!first.output.includes(ENROLL_TOKEN), 'the token never shows in the output');

    const second = rig.playbook();
    assert.equal(second.status, 0, second.output);
    const two = recapOf(second.output);
    assert.equal(two.failed, 0);
    assert.equal(two.changed, 0, `the second run changed something:\n${second.output}`);

    const check = rig.playbook('--check', '--diff');
    assert.equal(check.status, 0, check.output);
    assert.equal(recapOf(check.output).changed, 0, check.output);
    assert.ok(!check.output.includes(ENROLL_TOKEN), 'not even in --diff');
  });

  it('writes the environment file with the decrypted token, mode 0600', async () => {
    const file = join(rig.prefix, 'etc/fleetwave/agent.env');
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    const text = await readFile(file, 'utf8');
    assert.match(text, new RegExp(`^FLEETWAVE_ENROLL_TOKEN=${ENROLL_TOKEN}$`, 'm'));
    assert.match(text, new RegExp(`^FLEETWAVE_URL=${rig.server.url}$`, 'm'));
    assert.match(text, /^FLEETWAVE_LABELS=arch=amd64,env=prod,os=linux,region=us-east-1$/m);
    assert.match(text, new RegExp(`^FLEETWAVE_AGENT_ID=${AGENT_ID}$`, 'm'));
  });

  it('installs the release, the command and the unit of deploy/systemd, enabled', async () => {
    const current = join(rig.prefix, 'opt/fleetwave/current');
    assert.equal(await readlink(current), join(rig.prefix, 'opt/fleetwave/releases/0.1.0-test'));
    assert.ok(existsSync(join(current, 'dist/cli/main.js')));
    for (const command of [
      'usr/bin/fleetwave',
      'usr/libexec/fleetwave/apply',
      'usr/libexec/fleetwave/health',
    ]) {
      assert.equal((await stat(join(rig.prefix, command))).mode & 0o777, 0o755, command);
    }
    const unit = join(rig.prefix, 'etc/systemd/system/fleetwave-agent.service');
    assert.equal((await stat(unit)).mode & 0o777, 0o644);
    const wants = join(
      rig.prefix,
      'etc/systemd/system/multi-user.target.wants/fleetwave-agent.service',
    );
    assert.ok((await lstat(wants)).isSymbolicLink());
    assert.equal(await readlink(wants), unit);
    // The role's unit is the repository's unit with the prefix: the two stay in step.
    const installed = (await readFile(unit, 'utf8')).replaceAll(rig.prefix, '');
    const shipped = await readFile(join(ROOT, 'deploy/systemd/fleetwave-agent.service'), 'utf8');
    assert.equal(directives(installed), directives(shipped));
  });

  it('the installed agent, run as its unit runs it, enrolls with the reconciler', async () => {
    await rig.enrolls(rig.prefix, AGENT_ID);
  });

  it('with trusted keys, --require-signatures and Vault: check mode writes nothing, a run installs them, a second changes nothing', () => {
    const extra = ['-e', `@${join(rig.work, 'signed-vars.json')}`];
    const check = rig.playbook(...extra, '--check');
    assert.equal(check.status, 0, check.output);
    assert.equal(existsSync(rig.signedPrefix), false, 'check mode writes nothing');
    const first = rig.playbook(...extra);
    assert.equal(first.status, 0, first.output);
    const one = recapOf(first.output);
    assert.equal(one.failed, 0);
    assert.ok(one.changed > 0, first.output);
    assert.ok(!first.output.includes(VAULT_TOKEN), 'the Vault token never shows in the output');

    const second = rig.playbook(...extra);
    assert.equal(second.status, 0, second.output);
    assert.equal(
      recapOf(second.output).changed,
      0,
      `the second run changed something:\n${second.output}`,
    );
    const diff = rig.playbook(...extra, '--check', '--diff');
    assert.equal(diff.status, 0, diff.output);
    assert.equal(recapOf(diff.output).changed, 0, diff.output);
    assert.ok(!diff.output.includes(VAULT_TOKEN), 'not even in --diff');
  });

  it('installs the trusted keys root-owned, 0644, and passes each with --trusted-key', async () => {
    const dir = join(rig.signedPrefix, 'etc/fleetwave/keys');
    const dirStat = await stat(dir);
    assert.equal(dirStat.mode & 0o777, 0o755);
    assert.equal(dirStat.uid, 0);
    const unit = await readFile(
      join(rig.signedPrefix, 'etc/systemd/system/fleetwave-agent.service'),
      'utf8',
    );
    const execStart = /^ExecStart=(.+)$/m.exec(unit)![1]!;
    const argv = execStart.split(' ');
    for (const [name, pem] of Object.entries(rig.keys)) {
      const file = join(dir, `${name}.pub`);
      const fileStat = await stat(file);
      assert.equal(fileStat.mode & 0o777, 0o644, file);
      assert.equal(fileStat.uid, 0, file);
      assert.equal(fileStat.gid, 0, file);
      assert.equal(await readFile(file, 'utf8'), pem);
      const at = argv.indexOf(`${name}=${file}`);
      assert.ok(
        at > 0 && argv[at - 1] === '--trusted-key',
        `--trusted-key ${name}=${file} in ${execStart}`,
      );
    }
    assert.ok(argv.includes('--require-signatures'), execStart);
    assert.equal(argv[argv.indexOf('--secret-dir') + 1], '/srv/fleetwave/secrets', execStart);
    // Otherwise still deploy/systemd's unit.
    const shipped = await readFile(join(ROOT, 'deploy/systemd/fleetwave-agent.service'), 'utf8');
    const plain = unit
      .replace(/ --trusted-key \S+| --require-signatures| --secret-dir \S+/g, '')
      .replaceAll(rig.signedPrefix, '');
    assert.equal(directives(plain), directives(shipped));
  });

  it('writes the Vault settings into the environment file, mode 0600', async () => {
    const file = join(rig.signedPrefix, 'etc/fleetwave/agent.env');
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    const text = await readFile(file, 'utf8');
    assert.match(text, /^VAULT_ADDR=https:\/\/vault\.example\.com:8200$/m);
    assert.match(text, new RegExp(`^VAULT_TOKEN=${VAULT_TOKEN.replaceAll('.', '\\.')}$`, 'm'));
    assert.match(text, /^VAULT_NAMESPACE=fleet$/m);
    assert.match(text, new RegExp(`^FLEETWAVE_ENROLL_TOKEN=${ENROLL_TOKEN}$`, 'm'));
    // The first install's has none.
    assert.doesNotMatch(
      await readFile(join(rig.prefix, 'etc/fleetwave/agent.env'), 'utf8'),
      /VAULT_/,
    );
  });

  it('that agent accepts its keys and options and enrolls', async () => {
    await rig.enrolls(rig.signedPrefix, SIGNED_AGENT_ID);
  });

  it('fails the play, saying why, on a bad key name, a private key or signatures required without keys', async () => {
    const badName = rig.playbook(
      '-e',
      `@${join(rig.work, 'signed-vars.json')}`,
      '-e',
      JSON.stringify({
        fleetwave_root: join(rig.work, 'bad-root'),
        fleetwave_trusted_keys: { 'acme release': join(rig.work, 'default.pub') },
      }),
    );
    assert.notEqual(badName.status, 0, badName.output);
    assert.equal(recapOf(badName.output).failed, 1, badName.output);
    assert.match(
      badName.output,
      /fleetwave_trusted_keys must map key names .* not names: \['acme release'\]/s,
    );

    const noKeys = rig.playbook(
      '-e',
      `@${join(rig.work, 'signed-vars.json')}`,
      '-e',
      JSON.stringify({ fleetwave_root: join(rig.work, 'bad-root'), fleetwave_trusted_keys: {} }),
    );
    assert.notEqual(noKeys.status, 0, noKeys.output);
    assert.match(noKeys.output, /fleetwave_require_signatures needs fleetwave_trusted_keys/);
    const privateKey = join(rig.work, 'release.key');
    await writeFile(
      privateKey,
      generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }),
    );
    const secret = rig.playbook(
      '-e',
      `@${join(rig.work, 'signed-vars.json')}`,
      '-e',
      JSON.stringify({
        fleetwave_root: join(rig.work, 'bad-root'),
        fleetwave_trusted_keys: { default: privateKey },
      }),
    );
    assert.notEqual(secret.status, 0, secret.output);
    assert.match(secret.output, /fleetwave_trusted_keys\.default: \S+ is not a public key/);
    assert.ok(!secret.output.includes('PRIVATE KEY-----\n'), 'the private key is not shown');
    assert.equal(existsSync(join(rig.work, 'bad-root')), false, 'nothing was installed');
  });

  // The built-in installer: the managed software's first version, its unit's restart through
  // polkit, the agent's writable paths and options.
  let managedPrefix: string;
  let managedPackage: string;

  it('with the built-in installer: installs the first version, the polkit rule and the unit that allows it; a second run changes nothing', async () => {
    managedPrefix = join(rig.work, 'managed-root');
    const src = join(rig.work, 'managed-src');
    await mkdir(src, { recursive: true });
    await writeFile(join(src, 'metrics-agent'), '#!/bin/sh\necho 2.4.0\n', { mode: 0o755 });
    await writeFile(join(src, 'fleetwave-install'), '#!/bin/sh\npwd > hook-ran-in\n', {
      mode: 0o755,
    });
    managedPackage = join(rig.work, 'metrics-agent-2.4.0.tar.gz');
    execFileSync('tar', ['-czf', managedPackage, '-C', src, '.']);
    const ca = join(rig.work, 'ca.pem');
    await writeFile(ca, rig.keys.default!);
    const vars = JSON.stringify({
      fleetwave_root: managedPrefix,
      fleetwave_agent_id: 'ansible-host-3',
      fleetwave_install_dir: '/opt/metrics-agent',
      fleetwave_config_file: '/etc/metrics-agent/config.yaml',
      fleetwave_service: 'metrics-agent.service',
      fleetwave_health_watch: '90s',
      fleetwave_health_metric: 'http://127.0.0.1:8000/metrics#agent_health',
      fleetwave_managed_package: managedPackage,
      fleetwave_managed_version: '2.4.0',
      fleetwave_ca: ca,
    });
    const first = rig.playbook('-e', vars);
    assert.equal(first.status, 0, first.output);
    assert.equal(recapOf(first.output).failed, 0);
    const second = rig.playbook('-e', vars);
    assert.equal(second.status, 0, second.output);
    assert.equal(
      recapOf(second.output).changed,
      0,
      `the second run changed something:\n${second.output}`,
    );

    const install = join(managedPrefix, 'opt/metrics-agent');
    assert.equal(await readlink(join(install, 'current')), 'versions/2.4.0');
    const versionDir = join(install, 'versions/2.4.0');
    assert.equal((await readFile(join(versionDir, 'hook-ran-in'), 'utf8')).trim(), versionDir);
    const sha = execFileSync('sha256sum', [managedPackage], { encoding: 'utf8' }).split(' ')[0];
    assert.equal(await readFile(join(install, 'versions/.2.4.0.installed'), 'utf8'), `${sha}\n`);
    assert.ok((await stat(join(managedPrefix, 'etc/metrics-agent'))).isDirectory());
    assert.equal(
      await readFile(join(managedPrefix, 'etc/fleetwave/ca.pem'), 'utf8'),
      rig.keys.default,
    );

    const rule = await readFile(
      join(managedPrefix, 'etc/polkit-1/rules.d/50-fleetwave-agent.rules'),
      'utf8',
    );
    assert.match(rule, /action\.lookup\('unit'\) === 'metrics-agent\.service'/);
    assert.match(rule, /action\.lookup\('verb'\) === 'restart'/);
    assert.match(rule, /subject\.user === 'fleetwave-agent'/);

    const unit = await readFile(
      join(managedPrefix, 'etc/systemd/system/fleetwave-agent.service'),
      'utf8',
    );
    assert.match(unit, /^User=fleetwave-agent$/m);
    assert.equal(
      /^ReadWritePaths=(.+)$/m.exec(unit)?.[1],
      `${install} ${join(managedPrefix, 'etc/metrics-agent')}`,
    );
    const execStart = /^ExecStart=(.+)$/m.exec(unit)![1]!;
    assert.doesNotMatch(execStart, /--apply|--health /);
    for (const option of [
      `--install-dir ${install}`,
      `--config-file ${join(managedPrefix, 'etc/metrics-agent/config.yaml')}`,
      '--service metrics-agent.service',
      '--health-watch 90s',
      '--health-metric http://127.0.0.1:8000/metrics#agent_health',
      `--ca ${join(managedPrefix, 'etc/fleetwave/ca.pem')}`,
    ])
      assert.ok(execStart.includes(option), `${option} in ${execStart}`);
    // Every hardening directive of deploy/systemd's unit stays.
    const shipped = await readFile(join(ROOT, 'deploy/systemd/fleetwave-agent.service'), 'utf8');
    const have = new Set(directives(unit.replaceAll(managedPrefix, '')).split('\n'));
    for (const line of directives(shipped).split('\n'))
      if (!line.startsWith('ExecStart=')) assert.ok(have.has(line), `the unit keeps ${line}`);
  });

  it('that agent accepts the installer options and enrolls', async () => {
    await rig.enrolls(managedPrefix, 'ansible-host-3');
  });

  it('refuses installer settings that do not fit, before writing anything', () => {
    const run = rig.playbook(
      '-e',
      JSON.stringify({
        fleetwave_root: join(rig.work, 'bad-root'),
        fleetwave_install_dir: '/opt/metrics-agent',
        fleetwave_run: './metrics-agent',
        fleetwave_service: 'metrics-agent.service',
      }),
    );
    assert.notEqual(run.status, 0, run.output);
    assert.match(run.output, /fleetwave_run or\s+fleetwave_service, not both/);
    assert.equal(existsSync(join(rig.work, 'bad-root')), false, 'nothing was installed');
  });
});
