// A fake GitHub REST API on loopback: the routes the actions call, with tokens that are good,
// read-only (a fork's GITHUB_TOKEN: writes get 403) or wrong (401), pagination by Link header,
// and a record of every call so tests can assert what was written.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

export interface Call {
  method: string;
  path: string;
  query: Record<string, string>;
  body: unknown;
  token: string | undefined;
}

export interface Comment {
  id: number;
  body: string;
  user: { login: string; type: 'Bot' | 'User' };
}

export interface Pull {
  number: number;
  title: string;
  head: string;
  base: string;
  body: string;
  state: 'open' | 'closed';
}

export interface TokenInfo {
  login: string;
  type: 'Bot' | 'User';
  write: boolean;
}

export const BOT_TOKEN = 'ghs_botTokenForTests0123456789';
export const READ_ONLY_TOKEN = 'ghs_readOnlyForkToken0123456789';
export const PAT_TOKEN = 'github_pat_personalTokenForTests0123';

export class FakeGitHub {
  readonly calls: Call[] = [];
  readonly comments = new Map<number, Comment[]>();
  readonly pulls: Pull[] = [];
  readonly tokens = new Map<string, TokenInfo>([
    [BOT_TOKEN, { login: 'github-actions[bot]', type: 'Bot', write: true }],
    [READ_ONLY_TOKEN, { login: 'github-actions[bot]', type: 'Bot', write: false }],
    [PAT_TOKEN, { login: 'release-robot', type: 'User', write: true }],
  ]);
  private nextId = 1000;
  private server: Server | undefined;
  url = '';

  readonly owner: string;
  readonly repo: string;

  constructor(owner = 'acme', repo = 'fleet-config') {
    this.owner = owner;
    this.repo = repo;
  }

  async start(): Promise<void> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    const { port } = this.server.address() as { port: number };
    this.url = `http://127.0.0.1:${port}`;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }

  /** Comments on a pull request, as GitHub would list them. */
  on(issue: number): Comment[] {
    let list = this.comments.get(issue);
    if (!list) this.comments.set(issue, (list = []));
    return list;
  }

  seedComment(issue: number, body: string, user: Comment['user']): Comment {
    const c = { id: this.nextId++, body, user };
    this.on(issue).push(c);
    return c;
  }

  writes(): Call[] {
    return this.calls.filter((c) => c.method !== 'GET');
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    const url = new URL(req.url ?? '/', this.url);
    const auth = req.headers.authorization ?? '';
    const token = /^(?:token|bearer) (.+)$/i.exec(auth)?.[1];
    const call: Call = {
      method: req.method ?? 'GET',
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      body: text === '' ? undefined : JSON.parse(text),
      token,
    };
    this.calls.push(call);
    const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
      res.end(JSON.stringify(body));
    };
    const who = token === undefined ? undefined : this.tokens.get(token);
    if (!who) {
      send(401, {
        message: 'Bad credentials',
        documentation_url: 'https://docs.github.com/rest',
        status: '401',
      });
      return;
    }
    if (call.method !== 'GET' && !who.write) {
      send(403, {
        message: 'Resource not accessible by integration',
        documentation_url: 'https://docs.github.com/rest',
        status: '403',
      });
      return;
    }
    const repoPath = `/repos/${this.owner}/${this.repo}`;
    const path = url.pathname;
    let m: RegExpExecArray | null;
    if (path === '/user' && call.method === 'GET') {
      if (who.type === 'Bot') send(403, { message: 'Resource not accessible by integration' });
      else send(200, { login: who.login, type: who.type });
      return;
    }
    if ((m = new RegExp(`^${repoPath}/issues/(\\d+)/comments$`).exec(path))) {
      const list = this.on(Number(m[1]));
      if (call.method === 'GET') {
        const perPage = Number(url.searchParams.get('per_page') ?? 30);
        const page = Number(url.searchParams.get('page') ?? 1);
        const slice = list.slice((page - 1) * perPage, page * perPage);
        const headers: Record<string, string> = {};
        if (page * perPage < list.length) {
          const next = new URL(url);
          next.searchParams.set('page', String(page + 1));
          headers.link = `<${next.href}>; rel="next"`;
        }
        send(200, slice, headers);
        return;
      }
      if (call.method === 'POST') {
        const c = this.seedComment(Number(m[1]), (call.body as { body: string }).body, {
          login: who.login,
          type: who.type,
        });
        send(201, c);
        return;
      }
    }
    if ((m = new RegExp(`^${repoPath}/issues/comments/(\\d+)$`).exec(path))) {
      const id = Number(m[1]);
      const c = [...this.comments.values()].flat().find((x) => x.id === id);
      if (!c) return send(404, { message: 'Not Found' });
      if (call.method === 'PATCH') {
        if (c.user.login !== who.login) return send(403, { message: 'not your comment' });
        c.body = (call.body as { body: string }).body;
        return send(200, c);
      }
    }
    if (path === `${repoPath}/pulls`) {
      if (call.method === 'GET') {
        const head = url.searchParams.get('head');
        const state = url.searchParams.get('state') ?? 'open';
        send(
          200,
          this.pulls
            .filter(
              (p) =>
                (head === null || `${this.owner}:${p.head}` === head) &&
                (state === 'all' || p.state === state),
            )
            .map((p) => this.pullJson(p)),
        );
        return;
      }
      if (call.method === 'POST') {
        const b = call.body as { title: string; head: string; base: string; body?: string };
        if (this.pulls.some((p) => p.head === b.head && p.state === 'open')) {
          return send(422, {
            message: 'Validation Failed',
            errors: [{ message: `A pull request already exists for ${this.owner}:${b.head}.` }],
          });
        }
        const p: Pull = {
          number: this.pulls.length + 1,
          title: b.title,
          head: b.head,
          base: b.base,
          body: b.body ?? '',
          state: 'open',
        };
        this.pulls.push(p);
        return send(201, this.pullJson(p));
      }
    }
    if ((m = new RegExp(`^${repoPath}/pulls/(\\d+)$`).exec(path)) && call.method === 'PATCH') {
      const p = this.pulls.find((x) => x.number === Number(m![1]));
      if (!p) return send(404, { message: 'Not Found' });
      const b = call.body as Partial<Pull>;
      if (b.title !== undefined) p.title = b.title;
      if (b.body !== undefined) p.body = b.body;
      return send(200, this.pullJson(p));
    }
    send(404, { message: 'Not Found', documentation_url: 'https://docs.github.com/rest' });
  }

  private pullJson(p: Pull): object {
    return {
      number: p.number,
      title: p.title,
      body: p.body,
      state: p.state,
      html_url: `https://github.com/${this.owner}/${this.repo}/pull/${p.number}`,
      head: { ref: p.head, label: `${this.owner}:${p.head}` },
      base: { ref: p.base },
    };
  }
}
