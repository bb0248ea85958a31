// The Ansible role deploy/ansible/roles/fleetwave_agent run for real with Debian's ansible,
// `connection: local`, into a scratch prefix (fleetwave_root): a release tarball built from this
// repository, the enrollment token from a real vault. Twice: the second run changes nothing.
// Then the installed unit's ExecStart is run with the installed environment file against a real
// reconciler, and the agent enrolls. Then into a second prefix with trusted release keys,
// --require-signatures, a --secret-dir and Vault settings, and that agent enrolls too.

import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync } from 'node:fs';
import {
  cp,
  lstat,
  mkdir,
  mkdtemp,
  readFile,
  readlink,
  rm,
  stat,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import {
  ENROLL_TOKEN,
  FleetRepo,
  startServer,
  testConfig,
  type Running,
} from '../reconciler/helpers.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const ANSIBLE_DIR = join(ROOT, 'deploy/ansible');
const PLAYBOOK = join(ANSIBLE_DIR, 'playbook.yml');
const present = (command: string): boolean =>
  spawnSync('sh', ['-c', `command -v ${command}`]).status === 0;
const SKIP = present('ansible-playbook')
  ? false
  : 'ansible-playbook is not installed (Debian package "ansible")';

const AGENT_ID = 'ansible-host-1';
const LABELS = { env: 'prod', region: 'us-east-1', os: 'linux', arch: 'amd64' };
const SIGNED_AGENT_ID = 'ansible-host-2';
const VAULT_TOKEN = 'hvs.a-vault-token-for-the-test';

/** The production dependencies' directories under node_modules, by Node's lookup rules. */
async function productionModules(): Promise<string[]> {
  const found = new Set<string>();
  const queue: string[] = [ROOT];
  while (queue.length > 0) {
    const dir = queue.shift()!;
    const pkg = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')) as Record<
      string,
      Record<string, string> | undefined
    >;
    const names = Object.keys({
      ...pkg.dependencies,
      ...pkg.optionalDependencies,
      ...pkg.peerDependencies,
    });
    for (const name of names) {
      let at = dir;
      let hit: string | undefined;
      for (;;) {
        const candidate = join(at, 'node_modules', name);
        if (existsSync(join(candidate, 'package.json'))) {
          hit = candidate;
          break;
        }
        if (at === ROOT || at === dirname(at)) break;
        at = dirname(at);
      }
      if (hit === undefined || found.has(hit)) continue; // an absent optional or peer
      found.add(hit);
      queue.push(hit);
    }
  }
  // Only the top-level ones: nested node_modules come along inside their parents.
  return [...found].filter((d) => /^node_modules\/(@[^/]+\/)?[^/]+$/.test(d.slice(ROOT.length)));
}

/**
 * A release tarball as the role expects it: package/ with package.json, dist/ (compiled now from
 * the sources), schemas/ and the production node_modules.
 */
async function buildRelease(work: string): Promise<string> {
  const pkg = join(work, 'stage', 'package');
  await mkdir(pkg, { recursive: true });
  execFileSync(
    process.execPath,
    [
      join(ROOT, 'node_modules/typescript/bin/tsc'),
      '-p',
      join(ROOT, 'tsconfig.build.json'),
      '--outDir',
      join(pkg, 'dist'),
      '--sourceMap',
      'false',
    ],
    // tsc turns on V8's compile cache, which would leave a node-compile-cache dir in /tmp.
    { cwd: ROOT, stdio: 'pipe', env: { ...process.env, NODE_DISABLE_COMPILE_CACHE: '1' } },
  );
  await cp(
    join(ROOT, 'reconciler/page/status.html'),
    join(pkg, 'dist/reconciler/page/status.html'),
  );
  await cp(join(ROOT, 'package.json'), join(pkg, 'package.json'));
  await cp(join(ROOT, 'schemas'), join(pkg, 'schemas'), { recursive: true });
  for (const dir of await productionModules()) {
    await cp(dir, join(pkg, dir.slice(ROOT.length)), { recursive: true, verbatimSymlinks: true });
  }
  const tarball = join(work, 'fleetwave-test.tar');
  execFileSync('tar', ['-cf', tarball, '-C', join(work, 'stage'), 'package']);
  return tarball;
}

interface Recap {
  ok: number;
  changed: number;
  failed: number;
  unreachable: number;
}

function recapOf(output: string): Recap {
  const m =
    /PLAY RECAP \*+\s*\n\s*localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)/.exec(
      output,
    );
  assert.ok(m, `no PLAY RECAP for localhost in:\n${output}`);
  return {
    ok: Number(m[1]),
    changed: Number(m[2]),
    unreachable: Number(m[3]),
    failed: Number(m[4]),
  };
}

/** The directives of a unit: no comments, no blank lines. */
const directives = (text: string) =>
  text
    .split('\n')
    .filter((line) => line.trim() !== '' && !line.startsWith('#'))
    .join('\n');

describe('the Ansible role fleetwave_agent', { skip: SKIP }, () => {
  let work: string;
  let prefix: string;
  let signedPrefix: string;
  let keys: Record<string, string>;
  let repo: FleetRepo;
  let server: Running;
  let args: string[];
  const env = {
    ...process.env,
    ANSIBLE_NOCOLOR: '1',
    ANSIBLE_FORCE_COLOR: '0',
    ANSIBLE_RETRY_FILES_ENABLED: '0',
    ANSIBLE_LOCALHOST_WARNING: '0',
    ANSIBLE_PYTHON_INTERPRETER: '/usr/bin/python3',
  } as NodeJS.ProcessEnv;

  const playbook = (...extra: string[]) => {
    const run = spawnSync('ansible-playbook', [...args, ...extra], {
      cwd: ANSIBLE_DIR,
      env,
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
    });
    return { status: run.status, output: `${run.stdout}\n${run.stderr}` };
  };

  /** Runs the installed unit's ExecStart with its environment file until the agent enrolls. */
  const enrolls = async (root: string, id: string): Promise<void> => {
    const unit = await readFile(join(root, 'etc/systemd/system/fleetwave-agent.service'), 'utf8');
    const execStart = /^ExecStart=(.+)$/m.exec(unit)![1]!;
    const envFile = /^EnvironmentFile=(.+)$/m.exec(unit)![1]!;
    const stateDirectory = await mkdtemp(join(work, 'state-'));
    const agentEnv: NodeJS.ProcessEnv = { PATH: process.env.PATH, STATE_DIRECTORY: stateDirectory };
    for (const line of (await readFile(envFile, 'utf8')).split('\n')) {
      const m = /^([A-Z_]+)=(.*)$/.exec(line);
      if (m) agentEnv[m[1]!] = m[2]!;
    }
    const argv = execStart.replaceAll('${STATE_DIRECTORY}', stateDirectory).split(' ');
    assert.ok(argv[0]!.startsWith(root), 'ExecStart runs the installed command');
    const agent = spawn(argv[0]!, argv.slice(1), {
      env: agentEnv,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    const exited = new Promise<number | null>((resolve) => agent.once('exit', resolve));
    try {
      await new Promise<void>((resolve, reject) => {
        // A guard against hanging, not a timing assertion.
        const guard = setTimeout(
          () => reject(new Error(`the agent did not enroll:\n${stderr}`)),
          60_000,
        );
        agent.stderr!.on('data', (chunk: Buffer) => {
          stderr += chunk.toString();
          if (stderr.includes(`fleetwave agent ${id}: enrolled with ${server.url}`)) {
            clearTimeout(guard);
            resolve();
          }
        });
        void exited.then((code) => {
          clearTimeout(guard);
          reject(new Error(`the agent exited (${code}) before enrolling:\n${stderr}`));
        });
      });
    } finally {
      agent.kill('SIGTERM');
      await exited;
    }
    const record = server.app.reconciler.agents.get(id);
    assert.ok(record, 'the reconciler knows the agent');
    assert.deepEqual({ ...record.labels }, LABELS);
  };

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'fleetwave-ansible-'));
    prefix = join(work, 'root');
    env.ANSIBLE_LOCAL_TEMP = join(work, 'ansible-tmp');
    env.ANSIBLE_HOME = join(work, 'ansible-home');
    repo = await FleetRepo.create();
    server = await startServer(testConfig({ repo: repo.origin, dataDir: `${repo.root}/data` }));
    const tarball = await buildRelease(work);

    // The token as an operator keeps it: encrypted with ansible-vault.
    const password = join(work, 'vault-password');
    await writeFile(password, 'a vault password for the test\n', { mode: 0o600 });
    const encrypted = execFileSync(
      'ansible-vault',
      [
        'encrypt_string',
        '--vault-password-file',
        password,
        '--name',
        'fleetwave_enroll_token',
        ENROLL_TOKEN,
      ],
      { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
    );
    assert.match(encrypted, /fleetwave_enroll_token: !vault \|\n\s+\$ANSIBLE_VAULT;1\.1;AES256/);
    assert.ok(!encrypted.includes(ENROLL_TOKEN));
    await writeFile(join(work, 'vault.yml'), encrypted);

    await writeFile(
      join(work, 'inventory.yml'),
      'fleetwave_agents:\n  hosts:\n    localhost:\n      ansible_connection: local\n',
    );
    await writeFile(
      join(work, 'vars.json'),
      JSON.stringify({
        fleetwave_root: prefix,
        fleetwave_url: [server.url],
        fleetwave_labels: LABELS,
        fleetwave_agent_id: AGENT_ID,
        fleetwave_agent_package: tarball,
        fleetwave_agent_version: '0.1.0-test',
        fleetwave_node_bin: process.execPath,
        fleetwave_manage_service: false,
        // Root already; no sudo here.
        ansible_become: false,
      }),
    );

    // Release signing keys as an operator has them: public PEM files on the controller.
    signedPrefix = join(work, 'signed-root');
    keys = {
      'acme-release-2026': generateKeyPairSync('ec', { namedCurve: 'P-256' })
        .publicKey.export({ type: 'spki', format: 'pem' })
        .toString(),
      default: generateKeyPairSync('ed25519')
        .publicKey.export({ type: 'spki', format: 'pem' })
        .toString(),
    };
    const keyFiles: Record<string, string> = {};
    for (const [name, pem] of Object.entries(keys)) {
      keyFiles[name] = join(work, `${name}.pub`);
      await writeFile(keyFiles[name], pem);
    }
    await writeFile(
      join(work, 'signed-vars.json'),
      JSON.stringify({
        fleetwave_root: signedPrefix,
        fleetwave_agent_id: SIGNED_AGENT_ID,
        fleetwave_trusted_keys: keyFiles,
        fleetwave_require_signatures: true,
        fleetwave_secret_dir: '/srv/fleetwave/secrets',
        fleetwave_vault: {
          addr: 'https://vault.example.com:8200',
          token: VAULT_TOKEN,
          namespace: 'fleet',
        },
      }),
    );
    args = [
      '-i',
      join(work, 'inventory.yml'),
      '-c',
      'local',
      '-e',
      `@${join(work, 'vars.json')}`,
      '-e',
      `@${join(work, 'vault.yml')}`,
      '--vault-password-file',
      password,
      PLAYBOOK,
    ];
  });

  after(async () => {
    await server?.close();
    await repo?.cleanup();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('passes ansible-playbook --syntax-check', () => {
    const run = playbook('--syntax-check');
    assert.equal(run.status, 0, run.output);
  });

  it('in check mode on a fresh host, reports changes and writes nothing', async () => {
    const run = playbook('--check');
    assert.equal(run.status, 0, run.output);
    const recap = recapOf(run.output);
    assert.equal(recap.failed, 0);
    assert.ok(recap.changed > 0, run.output);
    assert.equal(existsSync(join(prefix, 'etc/fleetwave/agent.env')), false);
  });

  it('installs the agent, then a second run changes nothing', async () => {
    const first = playbook();
    assert.equal(first.status, 0, first.output);
    const one = recapOf(first.output);
    assert.equal(one.failed, 0);
    assert.equal(one.unreachable, 0);
    assert.ok(one.changed > 0, first.output);
    assert.ok(!first.output.includes(ENROLL_TOKEN), 'the token never shows in the output');

    const second = playbook();
    assert.equal(second.status, 0, second.output);
    const two = recapOf(second.output);
    assert.equal(two.failed, 0);
    assert.equal(two.changed, 0, `the second run changed something:\n${second.output}`);

    const check = playbook('--check', '--diff');
    assert.equal(check.status, 0, check.output);
    assert.equal(recapOf(check.output).changed, 0, check.output);
    assert.ok(!check.output.includes(ENROLL_TOKEN), 'not even in --diff');
  });

  it('writes the environment file with the decrypted token, mode 0600', async () => {
    const file = join(prefix, 'etc/fleetwave/agent.env');
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    const text = await readFile(file, 'utf8');
    assert.match(text, new RegExp(`^FLEETWAVE_ENROLL_TOKEN=${ENROLL_TOKEN}$`, 'm'));
    assert.match(text, new RegExp(`^FLEETWAVE_URL=${server.url}$`, 'm'));
    assert.match(text, /^FLEETWAVE_LABELS=arch=amd64,env=prod,os=linux,region=us-east-1$/m);
    assert.match(text, new RegExp(`^FLEETWAVE_AGENT_ID=${AGENT_ID}$`, 'm'));
  });

  it('installs the release, the command and the unit of deploy/systemd, enabled', async () => {
    const current = join(prefix, 'opt/fleetwave/current');
    assert.equal(await readlink(current), join(prefix, 'opt/fleetwave/releases/0.1.0-test'));
    assert.ok(existsSync(join(current, 'dist/cli/main.js')));
    for (const command of [
      'usr/bin/fleetwave',
      'usr/libexec/fleetwave/apply',
      'usr/libexec/fleetwave/health',
    ]) {
      assert.equal((await stat(join(prefix, command))).mode & 0o777, 0o755, command);
    }
    const unit = join(prefix, 'etc/systemd/system/fleetwave-agent.service');
    assert.equal((await stat(unit)).mode & 0o777, 0o644);
    const wants = join(
      prefix,
      'etc/systemd/system/multi-user.target.wants/fleetwave-agent.service',
    );
    assert.ok((await lstat(wants)).isSymbolicLink());
    assert.equal(await readlink(wants), unit);
    // The role's unit is the repository's unit with the prefix: the two stay in step.
    const installed = (await readFile(unit, 'utf8')).replaceAll(prefix, '');
    const shipped = await readFile(join(ROOT, 'deploy/systemd/fleetwave-agent.service'), 'utf8');
    assert.equal(directives(installed), directives(shipped));
  });

  it('the installed agent, run as its unit runs it, enrolls with the reconciler', async () => {
    await enrolls(prefix, AGENT_ID);
  });

  it('with trusted keys, --require-signatures and Vault: check mode writes nothing, a run installs them, a second changes nothing', () => {
    const extra = ['-e', `@${join(work, 'signed-vars.json')}`];
    const check = playbook(...extra, '--check');
    assert.equal(check.status, 0, check.output);
    assert.equal(existsSync(signedPrefix), false, 'check mode writes nothing');
    const first = playbook(...extra);
    assert.equal(first.status, 0, first.output);
    const one = recapOf(first.output);
    assert.equal(one.failed, 0);
    assert.ok(one.changed > 0, first.output);
    assert.ok(!first.output.includes(VAULT_TOKEN), 'the Vault token never shows in the output');

    const second = playbook(...extra);
    assert.equal(second.status, 0, second.output);
    assert.equal(
      recapOf(second.output).changed,
      0,
      `the second run changed something:\n${second.output}`,
    );
    const diff = playbook(...extra, '--check', '--diff');
    assert.equal(diff.status, 0, diff.output);
    assert.equal(recapOf(diff.output).changed, 0, diff.output);
    assert.ok(!diff.output.includes(VAULT_TOKEN), 'not even in --diff');
  });

  it('installs the trusted keys root-owned, 0644, and passes each with --trusted-key', async () => {
    const dir = join(signedPrefix, 'etc/fleetwave/keys');
    const dirStat = await stat(dir);
    assert.equal(dirStat.mode & 0o777, 0o755);
    assert.equal(dirStat.uid, 0);
    const unit = await readFile(
      join(signedPrefix, 'etc/systemd/system/fleetwave-agent.service'),
      'utf8',
    );
    const execStart = /^ExecStart=(.+)$/m.exec(unit)![1]!;
    const argv = execStart.split(' ');
    for (const [name, pem] of Object.entries(keys)) {
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
      .replaceAll(signedPrefix, '');
    assert.equal(directives(plain), directives(shipped));
  });

  it('writes the Vault settings into the environment file, mode 0600', async () => {
    const file = join(signedPrefix, 'etc/fleetwave/agent.env');
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    const text = await readFile(file, 'utf8');
    assert.match(text, /^VAULT_ADDR=https:\/\/vault\.example\.com:8200$/m);
    assert.match(text, new RegExp(`^VAULT_TOKEN=${VAULT_TOKEN.replaceAll('.', '\\.')}$`, 'm'));
    assert.match(text, /^VAULT_NAMESPACE=fleet$/m);
    assert.match(text, new RegExp(`^FLEETWAVE_ENROLL_TOKEN=${ENROLL_TOKEN}$`, 'm'));
    // The first install's has none.
    assert.doesNotMatch(await readFile(join(prefix, 'etc/fleetwave/agent.env'), 'utf8'), /VAULT_/);
  });

  it('that agent accepts its keys and options and enrolls', async () => {
    await enrolls(signedPrefix, SIGNED_AGENT_ID);
  });

  it('fails the play, saying why, on a bad key name, a private key or signatures required without keys', async () => {
    const badName = playbook(
      '-e',
      `@${join(work, 'signed-vars.json')}`,
      '-e',
      JSON.stringify({
        fleetwave_root: join(work, 'bad-root'),
        fleetwave_trusted_keys: { 'acme release': join(work, 'default.pub') },
      }),
    );
    assert.notEqual(badName.status, 0, badName.output);
    assert.equal(recapOf(badName.output).failed, 1, badName.output);
    assert.match(
      badName.output,
      /fleetwave_trusted_keys must map key names .* not names: \['acme release'\]/s,
    );

    const noKeys = playbook(
      '-e',
      `@${join(work, 'signed-vars.json')}`,
      '-e',
      JSON.stringify({ fleetwave_root: join(work, 'bad-root'), fleetwave_trusted_keys: {} }),
    );
    assert.notEqual(noKeys.status, 0, noKeys.output);
    assert.match(noKeys.output, /fleetwave_require_signatures needs fleetwave_trusted_keys/);
    const privateKey = join(work, 'release.key');
    await writeFile(
      privateKey,
      generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }),
    );
    const secret = playbook(
      '-e',
      `@${join(work, 'signed-vars.json')}`,
      '-e',
      JSON.stringify({
        fleetwave_root: join(work, 'bad-root'),
        fleetwave_trusted_keys: { default: privateKey },
      }),
    );
    assert.notEqual(secret.status, 0, secret.output);
    assert.match(secret.output, /fleetwave_trusted_keys\.default: \S+ is not a public key/);
    assert.ok(!secret.output.includes('PRIVATE KEY-----\n'), 'the private key is not shown');
    assert.equal(existsSync(join(work, 'bad-root')), false, 'nothing was installed');
  });

  // The built-in installer: the managed software's first version, its unit's restart through
  // polkit, the agent's writable paths and options.
  let managedPrefix: string;
  let managedPackage: string;

  it('with the built-in installer: installs the first version, the polkit rule and the unit that allows it; a second run changes nothing', async () => {
    managedPrefix = join(work, 'managed-root');
    const src = join(work, 'managed-src');
    await mkdir(src, { recursive: true });
    await writeFile(join(src, 'metrics-agent'), '#!/bin/sh\necho 2.4.0\n', { mode: 0o755 });
    await writeFile(join(src, 'fleetwave-install'), '#!/bin/sh\npwd > hook-ran-in\n', {
      mode: 0o755,
    });
    managedPackage = join(work, 'metrics-agent-2.4.0.tar.gz');
    execFileSync('tar', ['-czf', managedPackage, '-C', src, '.']);
    const ca = join(work, 'ca.pem');
    await writeFile(ca, keys.default!);
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
    const first = playbook('-e', vars);
    assert.equal(first.status, 0, first.output);
    assert.equal(recapOf(first.output).failed, 0);
    const second = playbook('-e', vars);
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
    assert.equal(await readFile(join(managedPrefix, 'etc/fleetwave/ca.pem'), 'utf8'), keys.default);

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
    await enrolls(managedPrefix, 'ansible-host-3');
  });

  it('refuses installer settings that do not fit, before writing anything', () => {
    const run = playbook(
      '-e',
      JSON.stringify({
        fleetwave_root: join(work, 'bad-root'),
        fleetwave_install_dir: '/opt/metrics-agent',
        fleetwave_run: './metrics-agent',
        fleetwave_service: 'metrics-agent.service',
      }),
    );
    assert.notEqual(run.status, 0, run.output);
    assert.match(run.output, /fleetwave_run or\s+fleetwave_service, not both/);
    assert.equal(existsSync(join(work, 'bad-root')), false, 'nothing was installed');
  });
});
