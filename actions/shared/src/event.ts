// The workflow run's context, read once from the runner's environment: the event payload
// (GITHUB_EVENT_PATH), the repository, the workspace and the API URL. Only the fields the
// actions use are typed; everything else in the payload is ignored.

import { readFileSync } from 'node:fs';
import { FleetwaveError } from '../../../core/errors.ts';

export interface Repository {
  owner: string;
  repo: string;
}

export interface PullRequest {
  number: number;
  base: { sha: string; ref: string; repo: string };
  /** `repo` is null when the fork the pull request came from was deleted. */
  head: { sha: string; ref: string; repo: string | null };
}

export interface RunContext {
  eventName: string;
  workspace: string;
  apiUrl: string;
  serverUrl: string;
  repository?: Repository;
  pullRequest?: PullRequest;
  /** For push events: the commits before and after the push (before is absent for a new branch). */
  push?: { before?: string; after: string };
}

const SHA = /^[0-9a-f]{40}([0-9a-f]{24})?$/;

function field(value: unknown, ...path: string[]): unknown {
  let v = value;
  for (const key of path) {
    if (typeof v !== 'object' || v === null) return undefined;
    v = (v as Record<string, unknown>)[key];
  }
  return v;
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** Parses the repository `owner/name` (GITHUB_REPOSITORY). */
export function parseRepository(text: string | undefined): Repository | undefined {
  const m = /^([A-Za-z0-9_.-]+)\/([A-Za-z0-9_.-]+)$/.exec(text ?? '');
  return m ? { owner: m[1]!, repo: m[2]! } : undefined;
}

/** The pull request of a `pull_request` / `pull_request_target` payload, checked. */
export function pullRequestOf(payload: unknown): PullRequest | undefined {
  const pr = field(payload, 'pull_request');
  if (pr === undefined) return undefined;
  const number = field(pr, 'number');
  const base = {
    sha: str(field(pr, 'base', 'sha')),
    ref: str(field(pr, 'base', 'ref')),
    repo: str(field(pr, 'base', 'repo', 'full_name')),
  };
  const head = {
    sha: str(field(pr, 'head', 'sha')),
    ref: str(field(pr, 'head', 'ref')),
    repo: str(field(pr, 'head', 'repo', 'full_name')) ?? null,
  };
  if (
    typeof number !== 'number' ||
    !Number.isSafeInteger(number) ||
    !base.sha ||
    !SHA.test(base.sha) ||
    !head.sha ||
    !SHA.test(head.sha) ||
    !base.repo
  ) {
    throw new FleetwaveError(
      'USAGE',
      'the pull_request event payload lacks number, base.sha, head.sha or base.repo.full_name',
    );
  }
  return {
    number,
    base: { sha: base.sha, ref: base.ref ?? '', repo: base.repo },
    head: { sha: head.sha, ref: head.ref ?? '', repo: head.repo },
  };
}

export function readRunContext(env: NodeJS.ProcessEnv = process.env): RunContext {
  const eventName = env.GITHUB_EVENT_NAME ?? '';
  let payload: unknown = {};
  const eventPath = env.GITHUB_EVENT_PATH;
  if (eventPath) {
    try {
      payload = JSON.parse(readFileSync(eventPath, 'utf8'));
    } catch (e) {
      throw new FleetwaveError('USAGE', `cannot read the event payload at ${eventPath}`, {
        cause: e,
      });
    }
  }
  const context: RunContext = {
    eventName,
    workspace: env.GITHUB_WORKSPACE || process.cwd(),
    apiUrl: (env.GITHUB_API_URL || 'https://api.github.com').replace(/\/+$/, ''),
    serverUrl: (env.GITHUB_SERVER_URL || 'https://github.com').replace(/\/+$/, ''),
  };
  const repository = parseRepository(env.GITHUB_REPOSITORY);
  if (repository) context.repository = repository;
  if (eventName === 'pull_request' || eventName === 'pull_request_target') {
    const pr = pullRequestOf(payload);
    if (pr) context.pullRequest = pr;
  } else if (eventName === 'push') {
    const after = str(field(payload, 'after'));
    const before = str(field(payload, 'before'));
    if (after && SHA.test(after)) {
      context.push = { after };
      // A new branch's push has before = 0000…: there is nothing to compare with.
      if (before && SHA.test(before) && !/^0+$/.test(before)) context.push.before = before;
    }
  }
  return context;
}
