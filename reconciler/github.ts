// Opens the pull request of a revert (`rollback.revert: pull-request`) through the GitHub REST
// API with undici. Idempotent: a pull request from the same head branch, open or closed, is
// never opened twice (a person who closed it decided).

import { request, type Dispatcher } from 'undici';
import { FleetwaveError } from '../core/errors.ts';
import type { GitHubConfig } from './config.ts';

export interface PullRequest {
  number: number;
  url: string;
  state: string;
  created: boolean;
}

const TIMEOUT_MS = 15_000;

async function api(
  config: Required<GitHubConfig>,
  method: 'GET' | 'POST',
  path: string,
  body: unknown,
  dispatcher: Dispatcher | undefined,
): Promise<unknown> {
  const url = new URL(path.replace(/^\//, ''), config.apiUrl.replace(/\/?$/, '/'));
  let res;
  try {
    res = await request(url, {
      method,
      headers: {
        accept: 'application/vnd.github+json',
        authorization: `Bearer ${config.token}`,
        'x-github-api-version': '2022-11-28',
        'user-agent': 'fleetwave',
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      headersTimeout: TIMEOUT_MS,
      bodyTimeout: TIMEOUT_MS,
      signal: AbortSignal.timeout(TIMEOUT_MS),
      ...(dispatcher ? { dispatcher } : {}),
    });
  } catch (e) {
    throw new FleetwaveError(
      'GITHUB_API_FAILED',
      `${method} ${url.pathname}: the GitHub API at ${config.apiUrl} could not be reached (${(e as Error).message})`,
      { cause: e },
    );
  }
  const text = await res.body.text();
  if (res.statusCode < 200 || res.statusCode > 299) {
    let said = text.slice(0, 200);
    try {
      said = String((JSON.parse(text) as { message?: unknown }).message ?? said);
    } catch {
      // not JSON: the raw start of the answer says enough
    }
    const hint =
      res.statusCode === 401
        ? '; check --github-token'
        : res.statusCode === 403
          ? '; the token needs pull-requests: write and contents: write'
          : res.statusCode === 404
            ? '; check --github-repo and that the token can see it'
            : '';
    throw new FleetwaveError(
      'GITHUB_API_FAILED',
      `${method} ${url.pathname}: GitHub answered ${res.statusCode} (${said})${hint}`,
    );
  }
  return text === '' ? undefined : JSON.parse(text);
}

interface PullJson {
  number: number;
  html_url?: string;
  url?: string;
  state: string;
}

/** The pull request from `head` to `base`, opened unless one exists already. */
export async function ensurePullRequest(
  config: GitHubConfig,
  pull: { head: string; base: string; title: string; body: string },
  dispatcher?: Dispatcher,
): Promise<PullRequest> {
  if (config.token === undefined || config.repo === undefined) {
    throw new FleetwaveError(
      'GITHUB_API_FAILED',
      'rollback.revert is pull-request but --github-repo and --github-token (or FLEETWAVE_GITHUB_TOKEN) are not both set',
    );
  }
  const full = config as Required<GitHubConfig>;
  const owner = full.repo.split('/')[0]!;
  const query = new URLSearchParams({
    state: 'all',
    head: `${owner}:${pull.head}`,
    per_page: '10',
  });
  const existing = (await api(
    full,
    'GET',
    `/repos/${full.repo}/pulls?${query}`,
    undefined,
    dispatcher,
  )) as PullJson[] | undefined;
  const found = Array.isArray(existing) ? existing[0] : undefined;
  if (found) {
    return {
      number: found.number,
      url: found.html_url ?? found.url ?? '',
      state: found.state,
      created: false,
    };
  }
  const created = (await api(
    full,
    'POST',
    `/repos/${full.repo}/pulls`,
    pull,
    dispatcher,
  )) as PullJson;
  return {
    number: created.number,
    url: created.html_url ?? created.url ?? '',
    state: created.state,
    created: true,
  };
}
