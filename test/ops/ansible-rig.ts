// A scratch host for the Ansible role deploy/ansible/roles/fleetwave_agent: a release tarball
// built from this repository, the enrollment token encrypted with ansible-vault, a real
// reconciler to enroll with, and ansible-playbook run with `connection: local` into prefixes
// under one temp dir (fleetwave_root).

import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  ENROLL_TOKEN,
  FleetRepo,
  startServer,
  testConfig,
  type Running,
} from '../reconciler/helpers.ts';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const ANSIBLE_DIR = join(ROOT, 'deploy/ansible');
const PLAYBOOK = join(ANSIBLE_DIR, 'playbook.yml');
const present = (command: string): boolean =>
  spawnSync('sh', ['-c', `command -v ${command}`]).status === 0;
export const SKIP = present('ansible-playbook')
  ? false
  : 'ansible-playbook is not installed (Debian package "ansible")';

export const AGENT_ID = 'ansible-host-1';
const LABELS = { env: 'prod', region: 'us-east-1', os: 'linux', arch: 'amd64' };
export const SIGNED_AGENT_ID = 'ansible-host-2';
export const VAULT_TOKEN = 'hvs.a-vault-token-for-the-test';

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

export function recapOf(output: string): Recap {
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
export const directives = (text: string) =>
  text
    .split('\n')
    .filter((line) => line.trim() !== '' && !line.startsWith('#'))
    .join('\n');

/** One scratch host: its prefixes, the release keys, the reconciler its agents enroll with. */
export class AnsibleRig {
  work = '';
  /** The plain install's fleetwave_root. */
  prefix = '';
  /** The install with trusted keys, --require-signatures and Vault. */
  signedPrefix = '';
  /** The release keys' public PEMs, by name. */
  keys: Record<string, string> = {};
  repo: FleetRepo | undefined;
  server!: Running;
  private args: string[] = [];
  readonly env: NodeJS.ProcessEnv = {
    ...process.env,
    ANSIBLE_NOCOLOR: '1',
    ANSIBLE_FORCE_COLOR: '0',
    ANSIBLE_RETRY_FILES_ENABLED: '0',
    ANSIBLE_LOCALHOST_WARNING: '0',
    ANSIBLE_PYTHON_INTERPRETER: '/usr/bin/python3',
  };

  /** Builds the release, encrypts the token, starts the reconciler, writes the variables. */
  async start(): Promise<void> {
    this.work = await mkdtemp(join(tmpdir(), 'fleetwave-ansible-'));
    this.prefix = join(this.work, 'root');
    this.env.ANSIBLE_LOCAL_TEMP = join(this.work, 'ansible-tmp');
    this.env.ANSIBLE_HOME = join(this.work, 'ansible-home');
    this.repo = await FleetRepo.create();
    this.server = await startServer(
      testConfig({ repo: this.repo.origin, dataDir: `${this.repo.root}/data` }),
    );
    const tarball = await buildRelease(this.work);

    // The token as an operator keeps it: encrypted with ansible-vault.
    const password = join(this.work, 'vault-password');
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
      { env: this.env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
    );
    assert.match(encrypted, /fleetwave_enroll_token: !vault \|\n\s+\$ANSIBLE_VAULT;1\.1;AES256/);
    assert.ok(!encrypted.includes(ENROLL_TOKEN));
    await writeFile(join(this.work, 'vault.yml'), encrypted);

    await writeFile(
      join(this.work, 'inventory.yml'),
      'fleetwave_agents:\n  hosts:\n    localhost:\n      ansible_connection: local\n',
    );
    await writeFile(
      join(this.work, 'vars.json'),
      JSON.stringify({
        fleetwave_root: this.prefix,
        fleetwave_url: [this.server.url],
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
    this.signedPrefix = join(this.work, 'signed-root');
    this.keys = {
      'acme-release-2026': generateKeyPairSync('ec', { namedCurve: 'P-256' })
        .publicKey.export({ type: 'spki', format: 'pem' })
        .toString(),
      default: generateKeyPairSync('ed25519')
        .publicKey.export({ type: 'spki', format: 'pem' })
        .toString(),
    };
    const keyFiles: Record<string, string> = {};
    for (const [name, pem] of Object.entries(this.keys)) {
      keyFiles[name] = join(this.work, `${name}.pub`);
      await writeFile(keyFiles[name], pem);
    }
    await writeFile(
      join(this.work, 'signed-vars.json'),
      JSON.stringify({
        fleetwave_root: this.signedPrefix,
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
    this.args = [
      '-i',
      join(this.work, 'inventory.yml'),
      '-c',
      'local',
      '-e',
      `@${join(this.work, 'vars.json')}`,
      '-e',
      `@${join(this.work, 'vault.yml')}`,
      '--vault-password-file',
      password,
      PLAYBOOK,
    ];
  }

  async stop(): Promise<void> {
    await this.server?.close();
    await this.repo?.cleanup();
    if (this.work) await rm(this.work, { recursive: true, force: true });
  }

  playbook(...extra: string[]): { status: number | null; output: string } {
    const run = spawnSync('ansible-playbook', [...this.args, ...extra], {
      cwd: ANSIBLE_DIR,
      env: this.env,
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
    });
    return { status: run.status, output: `${run.stdout}\n${run.stderr}` };
  }

  /** Runs the installed unit's ExecStart with its environment file until the agent enrolls. */
  async enrolls(root: string, id: string): Promise<void> {
    const unit = await readFile(join(root, 'etc/systemd/system/fleetwave-agent.service'), 'utf8');
    const execStart = /^ExecStart=(.+)$/m.exec(unit)![1]!;
    const envFile = /^EnvironmentFile=(.+)$/m.exec(unit)![1]!;
    const stateDirectory = await mkdtemp(join(this.work, 'state-'));
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
          if (stderr.includes(`fleetwave agent ${id}: enrolled with ${this.server.url}`)) {
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
    const record = this.server.app.reconciler.agents.get(id);
    assert.ok(record, 'the reconciler knows the agent');
    assert.deepEqual({ ...record.labels }, LABELS);
  }
}
