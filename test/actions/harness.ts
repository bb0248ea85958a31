// Runs a bundled action the way the runner does: `node dist/index.js` with INPUT_* variables,
// an event payload file, GITHUB_OUTPUT / GITHUB_STEP_SUMMARY files and GITHUB_API_URL pointing
// at a fake GitHub. Fleets for the tests are written here, from parameters, into real git repos.

import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface ActionRun {
  status: number;
  stdout: string;
  stderr: string;
  outputs: Record<string, string>;
  summary: string;
  /** `::error …::` / `::warning …::` lines, as printed. */
  annotations: string[];
}

/** Parses GITHUB_OUTPUT's `name<<DELIMITER\nvalue\nDELIMITER` records. */
export function parseOutputs(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const m = /^([^<=]+)<<(.+)$/.exec(lines[i]!);
    if (m) {
      const value: string[] = [];
      for (i++; i < lines.length && lines[i] !== m[2]; i++) value.push(lines[i]!);
      out[m[1]!] = value.join('\n');
    } else if (lines[i]!.includes('=')) {
      const at = lines[i]!.indexOf('=');
      out[lines[i]!.slice(0, at)] = lines[i]!.slice(at + 1);
    }
  }
  return out;
}

export async function runAction(
  action: 'validate' | 'promote',
  options: {
    workspace: string;
    inputs: Record<string, string>;
    eventName: string;
    event: object;
    apiUrl: string;
    repository?: string;
    env?: Record<string, string>;
  },
): Promise<ActionRun> {
  const temp = await mkdtemp(join(tmpdir(), 'fw-runner-'));
  try {
    const files = {
      output: join(temp, 'output'),
      summary: join(temp, 'summary'),
      event: join(temp, 'event.json'),
    };
    await writeFile(files.output, '');
    await writeFile(files.summary, '');
    await writeFile(files.event, JSON.stringify(options.event));
    // A clean environment: a test run inside GitHub Actions must not leak its own GITHUB_*.
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      // A home of its own: the developer's ~/.gitconfig stays out. (Not GIT_CONFIG_GLOBAL:
      // simple-git refuses to run with it set.)
      HOME: temp,
      GITHUB_ACTIONS: 'true',
      CI: 'true',
      GITHUB_EVENT_NAME: options.eventName,
      GITHUB_EVENT_PATH: files.event,
      GITHUB_OUTPUT: files.output,
      GITHUB_STEP_SUMMARY: files.summary,
      GITHUB_WORKSPACE: options.workspace,
      GITHUB_REPOSITORY: options.repository ?? 'acme/fleet-config',
      GITHUB_API_URL: options.apiUrl,
      GITHUB_SERVER_URL: 'https://github.com',
      RUNNER_TEMP: temp,
      ...options.env,
    };
    for (const [name, value] of Object.entries(options.inputs)) {
      env[`INPUT_${name.replace(/ /g, '_').toUpperCase()}`] = value;
    }
    const child = spawn(
      process.execPath,
      [join(REPO_ROOT, 'actions', action, 'dist', 'index.js')],
      {
        cwd: options.workspace,
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const status = await new Promise<number>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (code) => resolve(code ?? -1));
    });
    return {
      status,
      stdout,
      stderr,
      outputs: parseOutputs(await readFile(files.output, 'utf8')),
      summary: await readFile(files.summary, 'utf8'),
      annotations: stdout.split(/\r?\n/).filter((l) => /^::(error|warning)[ :]/.test(l)),
    };
  } finally {
    await rm(temp, { recursive: true, force: true });
  }
}

/** A `pull_request` webhook payload (the fields GitHub sends that the actions read, and more). */
export function pullRequestEvent(options: {
  number: number;
  base: string;
  head: string;
  repository?: string;
  headRepository?: string;
  action?: 'opened' | 'synchronize' | 'reopened';
}): object {
  const full = options.repository ?? 'acme/fleet-config';
  const headFull = options.headRepository ?? full;
  const repo = (name: string, fork: boolean) => ({
    id: fork ? 2002 : 1001,
    node_id: fork ? 'R_fork' : 'R_base',
    name: name.split('/')[1],
    full_name: name,
    private: false,
    owner: { login: name.split('/')[0], id: fork ? 30 : 10, type: fork ? 'User' : 'Organization' },
    html_url: `https://github.com/${name}`,
    fork,
    default_branch: 'main',
  });
  const user = { login: 'octocat', id: 583231, type: 'User' };
  return {
    action: options.action ?? 'synchronize',
    number: options.number,
    pull_request: {
      url: `https://api.github.com/repos/${full}/pulls/${options.number}`,
      id: 1_500_000 + options.number,
      node_id: `PR_${options.number}`,
      html_url: `https://github.com/${full}/pull/${options.number}`,
      number: options.number,
      state: 'open',
      locked: false,
      title: 'Roll out the new agent version',
      user,
      body: null,
      draft: false,
      head: {
        label: `${headFull.split('/')[0]}:change`,
        ref: 'change',
        sha: options.head,
        user,
        repo: repo(headFull, headFull !== full),
      },
      base: {
        label: `${full.split('/')[0]}:main`,
        ref: 'main',
        sha: options.base,
        user,
        repo: repo(full, false),
      },
      author_association: headFull === full ? 'MEMBER' : 'CONTRIBUTOR',
      merged: false,
      mergeable: null,
      commits: 1,
      changed_files: 1,
    },
    repository: repo(full, false),
    sender: user,
  };
}

export async function writeFiles(
  root: string,
  files: Record<string, string | null>,
): Promise<void> {
  for (const [path, text] of Object.entries(files)) {
    const full = join(root, path);
    if (text === null) await rm(full, { force: true });
    else {
      await mkdir(dirname(full), { recursive: true });
      await writeFile(full, text);
    }
  }
}

/** 1-based line and column of the first occurrence of `needle` in `text` (after `after`). */
export function positionOf(
  text: string,
  needle: string,
  after = '',
): { line: number; col: number } {
  const start = after === '' ? 0 : text.indexOf(after);
  const at = text.indexOf(needle, start);
  if (start < 0 || at < 0) throw new Error(`${needle} not found`);
  const before = text.slice(0, at).split('\n');
  return { line: before.length, col: before.at(-1)!.length + 1 };
}
