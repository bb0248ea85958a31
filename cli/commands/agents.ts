// fleetwave agents --url URL [filters]: the agents inventory of a reconciler (fleet-wide, from
// its store), every page followed; `fleetwave agents forget ID` removes one agent.

import { FleetwaveError } from '../../core/errors.ts';
import type { AgentPage, AgentView } from '../../wire/inventory.ts';
import { EXIT, type CommandIO } from '../io.ts';
import { choice, parseFlags } from '../options.ts';
import { callApi } from './rollout.ts';

export const AGENTS_HELP = `Usage: fleetwave agents --url URL [options]
       fleetwave agents forget ID --url URL

Lists the agents a reconciler knows (every replica's, from the shared store): each agent's wave,
the revision and version it runs, its health and last message. Needs the admin token.

Options:
  --url URL             the reconciler (env FLEETWAVE_URL)
  --token TOKEN         the admin token (default: env FLEETWAVE_ADMIN_TOKEN)
  --selector SELECTOR   label selector: k=v, k!=v, k in (a,b), k notin (a,b), k, !k (comma: and)
  --health HEALTH       ok, degraded, failed or silent (no check-in for three poll intervals)
  --wave NAME           agents of one wave
  --revision REV        agents running a revision: a full commit id, stable or candidate
  --limit N             at most N agents (default: all)
  --format table|json   output format (default: table)
  -h, --help            show this help
`;

const PAGE = 1000;

function base(io: CommandIO, given: string | undefined): URL {
  const url = given ?? io.env.FLEETWAVE_URL;
  if (!url) throw new FleetwaveError('USAGE', 'agents needs --url URL (the reconciler)');
  try {
    const u = new URL(url.endsWith('/') ? url : `${url}/`);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('not http');
    return u;
  } catch {
    throw new FleetwaveError('USAGE', `--url "${url}" is not an http(s) URL`);
  }
}

function table(agents: AgentView[]): string {
  const rows = agents.map((a) => [
    a.id,
    a.wave ?? '-',
    a.version ?? '-',
    a.revision?.slice(0, 12) ?? '-',
    a.health.silent ? 'silent' : (a.health.status ?? 'unknown'),
    a.lastSeen,
    (a.health.message ?? '').replace(/\s+/g, ' ').slice(0, 80),
  ]);
  const head = ['ID', 'WAVE', 'VERSION', 'REVISION', 'HEALTH', 'LAST SEEN', 'MESSAGE'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]): string =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(head), ...rows.map(line)].join('\n') + '\n';
}

export async function agentsCommand(args: string[], io: CommandIO): Promise<number> {
  const { values, positionals } = parseFlags({
    args,
    allowPositionals: true,
    options: {
      url: { type: 'string' },
      token: { type: 'string' },
      selector: { type: 'string' },
      health: { type: 'string' },
      wave: { type: 'string' },
      revision: { type: 'string' },
      limit: { type: 'string' },
      format: { type: 'string', default: 'table' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    io.stdout(AGENTS_HELP);
    return EXIT.ok;
  }
  const token = values.token ?? (io.env.FLEETWAVE_ADMIN_TOKEN || undefined);
  const url = base(io, values.url);
  if (positionals[0] === 'forget') {
    const id = positionals[1];
    if (id === undefined || positionals.length > 2) {
      throw new FleetwaveError('USAGE', 'agents forget takes one agent id');
    }
    await callApi('POST', new URL(`v1/agents/${encodeURIComponent(id)}/forget`, url), token, {});
    io.stdout(`forgot ${id}\n`);
    return EXIT.ok;
  }
  if (positionals.length > 0) {
    throw new FleetwaveError('USAGE', `agents takes no argument "${positionals[0]}"`);
  }
  const format = choice('--format', values.format, ['table', 'json'] as const);
  const health = values.health;
  if (health !== undefined)
    choice('--health', health, ['ok', 'degraded', 'failed', 'silent'] as const);
  let limit = Number.POSITIVE_INFINITY;
  if (values.limit !== undefined) {
    limit = Number(values.limit);
    if (!/^\d+$/.test(values.limit) || limit < 1) {
      throw new FleetwaveError(
        'USAGE',
        `--limit must be a whole number from 1, not "${values.limit}"`,
      );
    }
  }
  const agents: AgentView[] = [];
  let cursor: string | null = null;
  do {
    const q = new URL('v1/agents', url);
    for (const key of ['selector', 'health', 'wave', 'revision'] as const) {
      const v = values[key];
      if (v !== undefined) q.searchParams.set(key, v);
    }
    q.searchParams.set('limit', String(Math.min(PAGE, limit - agents.length)));
    if (cursor) q.searchParams.set('cursor', cursor);
    const page = (await callApi('GET', q, token, undefined)) as AgentPage;
    agents.push(...page.agents);
    cursor = page.next;
  } while (cursor !== null && agents.length < limit);
  io.stdout(format === 'json' ? JSON.stringify(agents, null, 2) + '\n' : table(agents));
  return EXIT.ok;
}
