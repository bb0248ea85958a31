// fleetwave status|pause|resume|promote|rollback --url URL: the operator's commands, over the
// reconciler's HTTP API. Actions are written to the state branch by the reconciler.

import { hostname, userInfo } from 'node:os';
import { request } from 'undici';
import {
  FleetwaveError,
  isFleetwaveError,
  type ErrorCode,
  ERROR_CODES,
} from '../../core/errors.ts';
import type { Status } from '../../wire/status.ts';
import { EXIT, type CommandIO } from '../io.ts';
import { choice, parseFlags } from '../options.ts';

export type RolloutCommand = 'status' | 'pause' | 'resume' | 'promote' | 'rollback';

const WHAT: Record<RolloutCommand, string> = {
  status:
    'Shows the rollout: stable, candidate and its wave, gates of the last evaluation, history.',
  pause: 'Pauses the rollout: nothing is started or promoted until resume.',
  resume: 'Resumes a paused rollout.',
  promote:
    'Moves the candidate to the next wave now (or makes it stable after the last), gates or not.',
  rollback:
    'Rejects the candidate: every agent goes back to stable at once, and it is reverted on main.',
};

export function help(name: RolloutCommand): string {
  return `Usage: fleetwave ${name} --url URL [options]

${WHAT[name]}

Options:
  --url URL               the reconciler (e.g. http://reconciler:8080)
${name === 'status' ? '' : '  --token TOKEN           the admin token (default: env FLEETWAVE_ADMIN_TOKEN)\n  --reason TEXT           why, recorded in the state branch commit\n'}  --format text|json      output format (default: text)
  -h, --help              show this help
`;
}

export async function callApi(
  method: 'GET' | 'POST',
  url: URL,
  token: string | undefined,
  body: unknown,
): Promise<unknown> {
  let res;
  try {
    res = await request(url, {
      method,
      headers: {
        accept: 'application/json',
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      headersTimeout: 60_000,
      bodyTimeout: 60_000,
    });
  } catch (e) {
    throw new FleetwaveError(
      'RECONCILER_UNREACHABLE',
      `cannot reach the reconciler at ${url.origin}: ${(e as Error).message}`,
    );
  }
  const text = await res.body.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new FleetwaveError(
      'RECONCILER_UNREACHABLE',
      `${url.href} answered ${res.statusCode} without JSON`,
    );
  }
  if (res.statusCode >= 400) {
    const err = (json as { error?: { code?: string; message?: string } }).error;
    const code = (err?.code && err.code in ERROR_CODES ? err.code : 'INTERNAL') as ErrorCode;
    throw new FleetwaveError(code, `${res.statusCode} ${err?.message ?? text.slice(0, 200)}`);
  }
  return json;
}

/** GET /v1/status as read here: the wire's shape, from a server that may be older or newer. */
type StatusJson = Status;

/**
 * Every problem the status reports, each with the field of /v1/status that holds it, so that
 * `--format json` (or the API) shows the whole of it.
 */
function problems(s: StatusJson): Array<{ field: string; message: string }> {
  const out: Array<{ field: string; message: string }> = [];
  const remote = s.git?.remote;
  if (remote?.reachable === false && remote.lastError)
    out.push({
      field: 'git.remote.lastError',
      message: `${remote.lastError} (${remote.consecutiveFailures} failed fetch${remote.consecutiveFailures === 1 ? '' : 'es'} in a row)`,
    });
  const attempted = s.git?.branch?.lastAttempted;
  if (attempted && !attempted.valid)
    out.push({
      field: 'git.branch.lastAttempted.errors',
      message: `the tip ${attempted.revision.slice(0, 12)} of ${s.git!.branch!.name} is invalid and not served: ${attempted.errors.join('; ')}`,
    });
  const force = s.git?.branch?.forcePush;
  if (force)
    out.push({
      field: 'git.branch.forcePush',
      message: `history was rewritten at ${force.at}: ${force.from.slice(0, 12)} -> ${force.to.slice(0, 12)}`,
    });
  const stateError = s.git?.state?.lastError;
  if (stateError)
    out.push({ field: 'git.state.lastError.errors', message: stateError.errors.join('; ') });
  if (s.rollout?.stalled) out.push({ field: 'rollout.stalled', message: s.rollout.stalled });
  if (s.rollout?.lastError)
    out.push({ field: 'rollout.lastError.message', message: s.rollout.lastError.message });
  return out;
}

function statusText(s: StatusJson): string {
  const lines: string[] = [];
  lines.push(`stable:    ${s.stable ?? '(none yet)'}`);
  lines.push(
    s.candidate
      ? `candidate: ${s.candidate.revision} on wave ${s.candidate.waveIndex} (${s.candidate.wave ?? '?'}) since ${s.candidate.waveStartedAt ?? '?'}`
      : 'candidate: none',
  );
  if (s.paused) lines.push('paused:    yes');
  if (s.ready === false) lines.push('ready:     no, nothing is served yet');
  for (const p of problems(s)) lines.push(`ERROR ${p.field}: ${p.message}`);
  for (const w of s.waves) {
    lines.push(
      `  wave ${w.name.padEnd(12)} ${String(w.agents).padStart(6)} agents  candidate ${w.running.candidate}  stable ${w.running.stable}  other ${w.running.other}`,
    );
  }
  const e = s.rollout?.lastEvaluation;
  if (e) {
    lines.push(`last evaluation ${e.at}: ${e.decision}${e.reason ? `: ${e.reason}` : ''}`);
    for (const g of e.gates) lines.push(`  ${g.verdict.padEnd(4)} ${g.gate}: ${g.message}`);
  }
  for (const r of s.rollout?.reverts ?? [])
    lines.push(`revert of ${r.revision.slice(0, 12)}: ${r.state}: ${r.message}`);
  for (const r of s.rejected.slice(-5))
    lines.push(`rejected ${r.revision.slice(0, 12)} at wave ${r.waveIndex}: ${r.reason}`);
  if (s.history?.length) {
    lines.push('history (newest first):');
    for (const h of s.history.slice(0, 10))
      lines.push(`  ${h.at}  ${h.commit.slice(0, 12)}  ${h.subject}`);
  }
  return lines.join('\n') + '\n';
}

export function rolloutCommand(name: RolloutCommand) {
  return async (args: string[], io: CommandIO): Promise<number> => {
    const { values, positionals } = parseFlags({
      args,
      allowPositionals: false,
      options: {
        url: { type: 'string' },
        token: { type: 'string' },
        reason: { type: 'string' },
        format: { type: 'string', default: 'text' },
        help: { type: 'boolean', short: 'h' },
      },
    });
    void positionals;
    if (values.help) {
      io.stdout(help(name));
      return EXIT.ok;
    }
    const format = choice('--format', values.format, ['text', 'json'] as const);
    const given = values.url ?? io.env.FLEETWAVE_URL;
    if (!given) throw new FleetwaveError('USAGE', `${name} needs --url URL (the reconciler)`);
    let base: URL;
    try {
      base = new URL(given.endsWith('/') ? given : `${given}/`);
      if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new Error('not http');
    } catch {
      throw new FleetwaveError('USAGE', `--url "${given}" is not an http(s) URL`);
    }
    if (name === 'status') {
      const s = (await callApi(
        'GET',
        new URL('v1/status', base),
        undefined,
        undefined,
      )) as StatusJson;
      io.stdout(format === 'json' ? JSON.stringify(s, null, 2) + '\n' : statusText(s));
      return EXIT.ok;
    }
    const token = values.token ?? (io.env.FLEETWAVE_ADMIN_TOKEN || undefined);
    let actor = 'an operator';
    try {
      actor = `${userInfo().username}@${hostname()}`;
    } catch {
      // no user name on this system: stay anonymous
    }
    try {
      const result = (await callApi('POST', new URL(`v1/rollout/${name}`, base), token, {
        reason: values.reason ?? 'no reason given',
        actor,
      })) as { changed: boolean; stateCommit: string; message: string };
      io.stdout(
        format === 'json'
          ? JSON.stringify(result, null, 2) + '\n'
          : result.changed
            ? `${result.message}\nwritten as ${result.stateCommit}\n`
            : `${result.message}\n`,
      );
      return EXIT.ok;
    } catch (e) {
      if (isFleetwaveError(e, 'UNAUTHENTICATED') && token === undefined) {
        throw new FleetwaveError(
          'UNAUTHENTICATED',
          `${e.message} (set --token or FLEETWAVE_ADMIN_TOKEN)`,
        );
      }
      throw e;
    }
  };
}
