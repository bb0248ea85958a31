// The installer's parts: the config file in each format, --service through systemctl (a fake
// `systemctl` on PATH records its calls: systemd does not run here), a failing install hook,
// a crash loop after the watch (reported, not undone) and the agent's installer flags.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { isAgentError } from '../../agent/errors.ts';
import { renderConfig, writeConfig } from '../../agent/install/config.ts';
import { gaugeValues } from '../../agent/install/health.ts';
import { Installer } from '../../agent/install/installer.ts';
import { readAgentOptions } from '../../cli/commands/agent.ts';
import { etagOf } from '../../core/target/etag.ts';
import type { Target } from '../../core/target/model.ts';

const CONFIG = {
  agent: { hostname: 'web-1', interval: '30s', 'log level': 'info' },
  output: { endpoint: 'https://ingest.example/v1', apiKey: 's3cr$t"`\\', port: 443, tls: true },
  tags: ['a', 'b'],
  collectors: [{ name: 'cpu', enabled: true }, { name: 'disk' }],
};

describe('the config file', () => {
  it('says the config in YAML, JSON, TOML and env', () => {
    assert.deepEqual(parseYaml(renderConfig(CONFIG, 'yaml')), CONFIG);
    assert.deepEqual(JSON.parse(renderConfig(CONFIG, 'json')), CONFIG);
    assert.equal(
      renderConfig(CONFIG, 'toml'),
      `tags = ["a", "b"]

[agent]
hostname = "web-1"
interval = "30s"
"log level" = "info"

[output]
endpoint = "https://ingest.example/v1"
apiKey = "s3cr$t\\"\`\\\\"
port = 443
tls = true

[[collectors]]
name = "cpu"
enabled = true

[[collectors]]
name = "disk"
`,
    );
    const env = renderConfig(CONFIG, 'env');
    assert.match(env, /^AGENT_LOG_LEVEL="info"$/m);
    assert.match(env, /^OUTPUT_APIKEY="s3cr\\\$t\\"\\`\\\\"$/m);
    assert.match(env, /^TAGS="\[\\"a\\",\\"b\\"\]"$/m);
    // A shell reads the values back exactly.
    const dir = mkdtempSync(join(tmpdir(), 'fleetwave-env-'));
    let out: string;
    try {
      writeFileSync(join(dir, 'app.env'), env);
      out = execFileSync('sh', ['-c', `. "${dir}/app.env"; printf %s "$OUTPUT_APIKEY"`], {
        encoding: 'utf8',
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    assert.equal(out, CONFIG.output.apiKey);
  });

  it('refuses what a format cannot say', () => {
    assert.throws(() => renderConfig({ a: null }, 'toml'), /a is null, which TOML cannot say/);
    assert.throws(() => renderConfig({ 'a-b': 1, a_b: 2 }, 'env'), /both become A_B/);
    assert.throws(() => renderConfig({ a: 'x\ny' }, 'env'), /newline/);
  });

  it('writes the file with mode 0600', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleetwave-config-'));
    try {
      await writeConfig(join(dir, 'app.toml'), CONFIG, 'toml');
      assert.equal((await stat(join(dir, 'app.toml'))).mode & 0o777, 0o600);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('reads a gauge from Prometheus text, labelled or not', () => {
    const text = '# HELP agent_health x\nagent_health 1.0\nagent_health_x 0\nup{job="a"} 0\n';
    assert.deepEqual(gaugeValues(text, 'agent_health'), [1]);
    assert.deepEqual(gaugeValues(text, 'up'), [0]);
  });
});

function target(version: string, sha256: string): Target {
  const t: Target = {
    etag: '',
    revision: 'r',
    wave: 'canary',
    version,
    artifact: { url: `https://example.invalid/${version}.tar.gz`, sha256 },
    config: { app: { port: 1 } },
    pollAfterSeconds: 30,
  };
  return { ...t, etag: etagOf(t) };
}

describe('the installer with --service and a fake systemctl', () => {
  let work: string;
  let calls: string;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'fleetwave-service-'));
    await mkdir(join(work, 'bin'));
    calls = join(work, 'calls');
    // Records each call; `is-active` answers as the file `inactive` says.
    await writeFile(
      join(work, 'bin', 'systemctl'),
      `#!/bin/sh\necho "$*" >> "${calls}"\n[ "$1" = is-active ] && [ -e "${work}/inactive" ] && exit 3\nexit 0\n`,
      { mode: 0o755 },
    );
    env = { PATH: `${join(work, 'bin')}:${process.env.PATH}` };
  });
  after(async () => {
    await rm(work, { recursive: true, force: true });
  });

  async function artifact(version: string, hook?: string): Promise<string> {
    const src = join(work, `src-${version}`);
    await mkdir(src, { recursive: true });
    await writeFile(join(src, 'bin'), `${version}\n`);
    if (hook) await writeFile(join(src, 'fleetwave-install'), hook, { mode: 0o755 });
    const out = join(work, `${version}.tar.gz`);
    execFileSync('tar', ['-czf', out, '-C', src, '.']);
    return out;
  }

  it('restarts exactly the unit after a switch and fails the watch when it is not active', async () => {
    const installer = new Installer({
      installDir: join(work, 'install'),
      configFile: join(work, 'etc', 'app.yaml'),
      service: 'metrics-agent.service',
      healthWatchMs: 300,
      env,
    });
    await installer.prepare();
    const t1 = target('1.0.0', 'a'.repeat(64));
    await installer.install(t1, { app: { port: 1 } }, await artifact('1.0.0'));
    assert.equal(await readlink(join(work, 'install', 'current')), 'versions/1.0.0');
    assert.equal(await readFile(join(work, 'etc', 'app.yaml'), 'utf8'), 'app:\n  port: 1\n');
    const ok = await installer.restartAndWatch(t1, new AbortController().signal);
    assert.deepEqual(ok, { ok: true });
    const lines = (await readFile(calls, 'utf8')).trim().split('\n');
    assert.equal(lines[0], 'restart metrics-agent.service');
    assert.ok(lines.slice(1).every((l) => l === 'is-active --quiet metrics-agent.service'));

    await writeFile(join(work, 'inactive'), '');
    const t2 = target('2.0.0', 'b'.repeat(64));
    await installer.install(t2, { app: { port: 2 } }, await artifact('2.0.0'));
    const bad = await installer.restartAndWatch(t2, new AbortController().signal);
    assert.equal(bad.ok, false);
    assert.match((bad as { reason: string }).reason, /metrics-agent.service is not active/);
    await rm(join(work, 'inactive'));
    await installer.restore(t1, { app: { port: 1 } });
    assert.equal(await readlink(join(work, 'install', 'current')), 'versions/1.0.0');
    assert.equal(await readFile(join(work, 'etc', 'app.yaml'), 'utf8'), 'app:\n  port: 1\n');
  });

  it('reports a crash loop after the watch, without switching back', async () => {
    const lines: string[] = [];
    const installer = new Installer({
      installDir: join(work, 'install-loop'),
      // Up through the watch, then exits again and again.
      run: 'echo "up $FLEETWAVE_VERSION"; sleep 0.6; exit 2',
      healthWatchMs: 300,
      restartBackoff: { baseMs: 10, capMs: 20, retryAfterCapMs: 0 },
      log: (line) => lines.push(line),
      env,
    });
    await installer.prepare();
    const t = target('4.0.0', 'd'.repeat(64));
    try {
      await installer.install(t, {}, await artifact('4.0.0'));
      assert.deepEqual(await installer.restartAndWatch(t, new AbortController().signal), {
        ok: true,
      });
      let health = await installer.health();
      for (let i = 0; i < 100 && !health.crashLoop; i++) {
        await new Promise((r) => setTimeout(r, 100));
        health = await installer.health();
      }
      assert.equal(health.status, 'failed');
      assert.equal(health.crashLoop, true);
      assert.match(
        String(health.message),
        /^crash loop: \d+ exits in the last 5 minutes \(the last: exit 2\)/,
      );
      assert.equal(await readlink(join(work, 'install-loop', 'current')), 'versions/4.0.0');
      // Its output came through as JSON lines.
      const first = JSON.parse(lines[0]!) as Record<string, unknown>;
      assert.equal(first.line, 'up 4.0.0');
      assert.equal(first.version, '4.0.0');
      assert.equal(first.stream, 'stdout');
    } finally {
      await installer.stop();
    }
  });

  it('fails a target whose install hook fails, and removes that version', async () => {
    const installer = new Installer({ installDir: join(work, 'install-2'), env });
    await installer.prepare();
    const t = target('3.0.0', 'c'.repeat(64));
    await assert.rejects(
      installer.install(
        t,
        {},
        await artifact('3.0.0', '#!/bin/sh\necho "no venv here" >&2\nexit 4\n'),
      ),
      (e) =>
        isAgentError(e, 'INSTALL_FAILED') &&
        /fleetwave-install exited with 4: no venv here/.test(e.message),
    );
    assert.equal(existsSync(join(work, 'install-2', 'versions', '3.0.0')), false);
    assert.equal(existsSync(join(work, 'install-2', 'current')), false);
  });
});

describe('the installer flags', () => {
  const io = { env: {}, cwd: '/srv', stdout: () => {}, stderr: () => {} };
  const base = ['--url', 'http://127.0.0.1:1', '--id', 'a'];

  it('reads them into the install options', async () => {
    const options = await readAgentOptions(
      [
        ...base,
        '--install-dir',
        'app',
        '--config-file',
        '/etc/app/config.toml',
        '--run',
        './app',
        '--health-watch',
        '90s',
        '--health-metric',
        'http://127.0.0.1:8000/metrics#agent_health',
        '--pass-env',
        'HTTPS_PROXY',
      ],
      io as never,
    );
    assert.deepEqual(options?.install, {
      installDir: '/srv/app',
      configFile: '/etc/app/config.toml',
      run: './app',
      healthWatchMs: 90_000,
      probe: { kind: 'metric', url: 'http://127.0.0.1:8000/metrics', name: 'agent_health' },
    });
    assert.deepEqual(options?.passEnv, ['HTTPS_PROXY']);
  });

  const wrong: Array<[string[], RegExp]> = [
    [['--run', 'x'], /--run needs --install-dir/],
    [['--install-dir', 'd', '--apply', 'x'], /--apply and --install-dir both install/],
    [['--install-dir', 'd', '--run', 'x', '--service', 'y'], /--run and --service: give one/],
    [
      ['--install-dir', 'd', '--config-file', 'c.ini'],
      /must end in .yaml, .yml, .json, .toml or .env/,
    ],
    [['--install-dir', 'd', '--health-watch', 'soon'], /--health-watch must be a duration/],
    [['--install-dir', 'd', '--health-metric', 'http://x/metrics'], /is not URL#NAME/],
    [['--install-dir', 'd', '--service=--now'], /is not a unit name/],
  ];
  for (const [args, why] of wrong) {
    it(`refuses ${args.join(' ')}`, async () => {
      await assert.rejects(readAgentOptions([...base, ...args], io as never), why);
    });
  }
});
