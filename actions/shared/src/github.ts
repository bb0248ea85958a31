// GitHub writes for the actions: one sticky pull-request comment (created once, then updated in
// place) and pull requests for manual approvals. Failures are classified into messages people
// can act on (a wrong token, a fork's read-only token, an unreachable API), never stack traces.

import { getOctokit } from '@actions/github';
import type { Repository } from './event.ts';

export type GitHubClient = ReturnType<typeof getOctokit>;

export function githubClient(token: string, apiUrl: string): GitHubClient {
  return getOctokit(token, { baseUrl: apiUrl, log: silentLog });
}

// Octokit logs request failures itself; the actions say what went wrong once, in their words.
const silentLog = { debug() {}, info() {}, warn() {}, error() {} };

/** A GitHub API failure as one sentence saying what to do. */
export function describeGitHubError(e: unknown, what: string, apiUrl: string): string {
  const status = (e as { status?: unknown }).status;
  const message = (e as { message?: unknown }).message;
  const said = typeof message === 'string' ? message.split('\n')[0] : String(e);
  if (status === 401) {
    return `${what}: GitHub refused the token (401 ${said}); check the action's token input`;
  }
  if (status === 403) {
    return `${what}: the token may not do this (403 ${said}); give the job "pull-requests: write" (and "contents: write" to push). A pull request from a fork gets a read-only token, so nothing is written for it`;
  }
  if (status === 404) {
    return `${what}: not found (404); the token cannot see this repository or pull request`;
  }
  if (typeof status === 'number') return `${what}: GitHub answered ${status} (${said})`;
  return `${what}: the GitHub API at ${apiUrl} could not be reached (${said})`;
}

interface IssueComment {
  id: number;
  body?: string | null;
  user?: { login: string; type?: string } | null;
}

export type StickyResult =
  | { action: 'created'; id: number }
  | { action: 'updated'; id: number }
  | { action: 'unchanged'; id: number };

/**
 * Creates or updates the one comment on `issue` whose body starts with `marker` and that was
 * written by a bot (the GITHUB_TOKEN's github-actions[bot], a GitHub App) or by the token's own
 * user. Never a second one: a comment someone else wrote with the marker is not ours to edit.
 */
export async function upsertStickyComment(
  client: GitHubClient,
  where: Repository & { issue: number },
  marker: string,
  body: string,
): Promise<StickyResult> {
  const params = { owner: where.owner, repo: where.repo, issue_number: where.issue };
  const comments: IssueComment[] = await client.paginate(client.rest.issues.listComments, {
    ...params,
    per_page: 100,
  });
  const marked = comments.filter((c) => (c.body ?? '').startsWith(marker));
  let ours = marked.find((c) => c.user?.type === 'Bot');
  if (!ours && marked.length > 0) {
    // A personal access token or an App's user token: the comment's author is that user.
    const me = await client.rest.users.getAuthenticated().then(
      (r) => r.data.login,
      () => undefined,
    );
    if (me !== undefined) ours = marked.find((c) => c.user?.login === me);
  }
  if (ours) {
    if (ours.body === body) return { action: 'unchanged', id: ours.id };
    await client.rest.issues.updateComment({
      owner: where.owner,
      repo: where.repo,
      comment_id: ours.id,
      body,
    });
    return { action: 'updated', id: ours.id };
  }
  const created = await client.rest.issues.createComment({ ...params, body });
  return { action: 'created', id: created.data.id };
}

/** GitHub refuses comments above 65,536 characters: cut at a line and say where the rest is. */
export function fitComment(body: string, note: string, max = 65_000): string {
  if (body.length <= max) return body;
  const cut = body.lastIndexOf('\n', max - note.length - 2);
  return `${body.slice(0, cut > 0 ? cut : max - note.length - 2)}\n\n${note}`;
}
