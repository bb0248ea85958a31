// The agent API (DESIGN §5) apart from any HTTP library: enroll, check in (with If-None-Match
// and ?wait= long-polling) and read a target take the few request parts they need and return
// an answer or throw a FleetwaveError. Every transport calls them: the raw handlers on the
// main port (agent-http.ts), the fastify routes (routes/agents.ts: app.inject, and requests of
// another shape on the main port) and the strict agent port (agent-port.ts, --agent-port), so
// they answer alike, to the byte of every error message.

import type { ErrorObject } from 'ajv';
import { parse as secureJsonParse } from 'secure-json-parse';
import { FleetwaveError } from '../core/errors.ts';
import { labelKeyProblem, labelValueProblem } from '../core/fleet/selector.ts';
import type { Labels } from '../core/target/model.ts';
import { CHECKIN_BODY_SCHEMA, type CheckinBody } from '../wire/checkin.ts';
import { ENROLL_BODY_SCHEMA } from '../wire/enroll.ts';
import { compileWire, wireAjv } from '../wire/schema.ts';
import type { AgentRecord, AgentReport } from './agents.ts';
import { bearer, issueAgentToken, secretEquals, verifyAgentToken } from './auth.ts';
import type { Reconciler } from './context.ts';
import type { Waiter } from './longpoll.ts';
import { sameLabels, type Served } from './targets.ts';

// The bodies' schemas and types are the wire's (wire/enroll.ts, wire/checkin.ts): the agent
// sends what is checked here, and the OpenAPI document is tested against the same schemas.
const ajv = wireAjv();
const validEnroll = compileWire(ajv, ENROLL_BODY_SCHEMA);
const validCheckin = compileWire(ajv, CHECKIN_BODY_SCHEMA);

/** "body/labels must be object, body must have required property 'id'" */
function schemaMessage(errors: ErrorObject[] | null | undefined): string {
  return (errors ?? []).map((e) => `body${e.instancePath} ${e.message ?? 'is invalid'}`).join(', ');
}

function bodyOf<T>(
  validate: ((b: unknown) => b is T) & { errors?: ErrorObject[] | null },
  body: unknown,
): T {
  if (!validate(body)) throw new FleetwaveError('REQUEST_INVALID', schemaMessage(validate.errors));
  return body;
}

/** What an agent request carries, whichever transport read it. */
export interface AgentRequest {
  /** The id of the request's credential (authenticate()), checked before the body is read. */
  agentId: string;
  /** The If-None-Match header. */
  ifNoneMatch?: string | undefined;
}

/** An answer that is not an error: the agent's target, or "you have it" (304). */
export type AgentAnswer =
  | { status: 200; served: Served & { ok: true } }
  | { status: 304; etag: string; pollAfterSeconds: number };

/** Where a held check-in's answer goes: the transport's connection or reply. */
export interface AnswerSink {
  answer(answer: AgentAnswer): void;
}

export interface CheckinWaiter extends Waiter {
  record: AgentRecord;
  /** The etag the agent has. */
  etag: string;
  to: AnswerSink;
}

/** A check-in's outcome: an answer now, or a wait the transport holds with `hold`. */
export type CheckinOutcome =
  AgentAnswer | { status: 'wait'; seconds: number; record: AgentRecord; etag: string };

const MAX_WAIT_QUERY = 86_400;

/** A JSON body as fastify's parser reads it (its words when it cannot); the agent port's too. */
export function parseJson(text: string): unknown {
  if (text === '') {
    // fastify's words (FST_ERR_CTP_EMPTY_JSON_BODY), so both routes answer alike.
    throw new FleetwaveError(
      'REQUEST_INVALID',
      "Body cannot be empty when content-type is set to 'application/json'",
    );
  }
  try {
    // A body that names neither key, plainly or escaped (any escape needs a backslash), cannot
    // hold one, and without a byte-order mark (which secure-json-parse strips) JSON.parse
    // alone reads it as secure-json-parse would.
    if (
      text.charCodeAt(0) !== 0xfeff &&
      !text.includes('\\') &&
      !text.includes('__proto__') &&
      !text.includes('constructor')
    ) {
      return JSON.parse(text) as unknown;
    }
    // fastify's JSON parser: __proto__ and constructor.prototype keys are refused.
    return secureJsonParse(text, undefined, { protoAction: 'error', constructorAction: 'error' });
  } catch {
    // fastify's words (FST_ERR_CTP_INVALID_JSON_BODY).
    throw new FleetwaveError(
      'REQUEST_INVALID',
      "Body is not valid JSON but content-type is set to 'application/json'",
    );
  }
}

/** The agent id of the request's credential; 401 without a valid one. */
export function authenticate(ctx: Reconciler, authorization: string | undefined): string {
  const token = bearer(authorization);
  const id = token === undefined ? undefined : verifyAgentToken(ctx.tokenKey, token);
  if (id === undefined) {
    throw new FleetwaveError(
      'UNAUTHENTICATED',
      'send Authorization: Bearer <agent token> from /v1/enroll',
    );
  }
  return id;
}

/**
 * Labels checked and frozen; when they equal the labels the agent already has, that same
 * object, so the placement and summary memos keyed on it hold.
 */
function checkLabels(labels: Record<string, string>, known: Labels | undefined): Labels {
  if (known !== undefined && sameLabels(known, labels)) return known;
  for (const key in labels) {
    if (!Object.hasOwn(labels, key)) continue;
    const problem = labelKeyProblem(key) ?? labelValueProblem(labels[key]!);
    if (problem) throw new FleetwaveError('REQUEST_INVALID', `body/labels: ${problem}`);
  }
  return Object.freeze({ ...labels });
}

/** `?wait=SECONDS` as its raw query value: absent is 0 (answer at once). */
export function waitOf(wait: unknown): number {
  if (wait === undefined || wait === '') return 0;
  if (typeof wait !== 'string' || !/^\d{1,6}$/.test(wait) || Number(wait) > MAX_WAIT_QUERY) {
    throw new FleetwaveError(
      'REQUEST_INVALID',
      `query/wait must be one whole number of seconds from 0 to ${MAX_WAIT_QUERY}`,
    );
  }
  return Number(wait);
}

/** The etags of `If-None-Match` (strong or weak, quoted), or '*'. */
export function ifNoneMatch(header: string | string[] | undefined): string[] | '*' | undefined {
  if (header === undefined) return undefined;
  const text = Array.isArray(header) ? header.join(',') : header;
  if (text.length > 4096) throw new FleetwaveError('REQUEST_INVALID', 'If-None-Match is too long');
  // What agents send: one strong etag.
  if (text.length > 1 && text.charCodeAt(0) === 34 && text.indexOf('"', 1) === text.length - 1) {
    return [text.slice(1, -1)];
  }
  if (text.trim() === '*') return '*';
  const tags: string[] = [];
  for (const m of text.matchAll(/(?:W\/)?"([^"]*)"|([^\s,"]+)/g)) tags.push(m[1] ?? m[2]!);
  return tags;
}

function matches(tags: string[] | '*' | undefined, etag: string): boolean {
  return tags === '*' || (tags !== undefined && tags.includes(etag));
}

type Ok = Served & { ok: true };

function ready(ctx: Reconciler) {
  const targets = ctx.targets;
  if (!targets) {
    ctx.metrics.checkins.not_ready++;
    throw new FleetwaveError('NOT_READY', 'no valid rollout to serve yet; see /v1/status', {
      details: { retryAfter: Math.max(1, Math.round(5 + 10 * ctx.random())) },
    });
  }
  return targets;
}

function unavailable(ctx: Reconciler, error: Extract<Served, { ok: false }>['error']): never {
  ctx.metrics.renderErrors.inc({ code: error.code });
  throw new FleetwaveError('TARGET_UNAVAILABLE', error.message);
}

/** The agent's whole target (for a 200). */
function served(ctx: Reconciler, record: AgentRecord): Ok {
  const result = ready(ctx).targetFor(record);
  if (!result.ok) unavailable(ctx, result.error);
  return result;
}

/** What the agent is served, rendering only when its labels or the rollout changed. */
function summary(ctx: Reconciler, record: AgentRecord) {
  const result = ready(ctx).summaryFor(record);
  if (!result.ok) unavailable(ctx, result.error);
  return { summary: result.summary, rendered: result.rendered };
}

/** 401 unless `authorization` carries the enrollment token (any, with --insecure-local-demo). */
export function authenticateEnrollment(ctx: Reconciler, authorization: string | undefined): void {
  const expected = ctx.config.enrollToken;
  if (expected === undefined) return; // --insecure-local-demo
  const token = bearer(authorization);
  if (token === undefined || !secretEquals(token, expected)) {
    throw new FleetwaveError(
      'UNAUTHENTICATED',
      'enrollment needs Authorization: Bearer <enrollment token>',
    );
  }
}

/** POST /v1/enroll, once authenticateEnrollment passed: the agent's credential. */
export function enroll(ctx: Reconciler, body: unknown): { id: string; token: string } {
  const { id, labels } = bodyOf(validEnroll, body);
  ctx.agents.enrolled(id, checkLabels(labels, ctx.agents.get(id)?.labels), ctx.now());
  ctx.metrics.enrollments.inc();
  return { id, token: issueAgentToken(ctx.tokenKey, id) };
}

/**
 * A check-in's body: as the transport read it (`text`, parsed here), or as a framework parsed
 * it (`json`, fastify's routes).
 */
export type CheckinInput = { text: string } | { json: unknown };

/**
 * POST /v1/checkin: records the agent's report and answers its target (200), 304 when it has
 * it, or, with ?wait= and room, a wait for the transport to hold (see `hold`).
 */
export function checkin(
  ctx: Reconciler,
  request: AgentRequest & { wait: unknown },
  body: CheckinInput,
): CheckinOutcome {
  const id = request.agentId;
  const known = ctx.agents.get(id);
  // Most check-ins repeat the agent's last report to the byte: that text passed every check
  // below for this agent (the registry forgets it when anything else changes the record), so
  // it is not parsed or checked again, and the record stays as it is.
  const text = 'text' in body ? body.text : undefined;
  const again = known !== undefined && text !== undefined && known.reported === text;
  let checked: CheckinBody | undefined;
  if (!again) {
    checked = bodyOf(validCheckin, 'json' in body ? body.json : parseJson(body.text));
    if (checked.id !== id) {
      throw new FleetwaveError('FORBIDDEN', 'this credential belongs to another agent');
    }
  }
  const wait = waitOf(request.wait);
  const tags = ifNoneMatch(request.ifNoneMatch);
  const at = ctx.now();
  let record: AgentRecord;
  if (checked === undefined) {
    record = ctx.agents.again(known!, at);
  } else {
    const report: AgentReport = { id, labels: checkLabels(checked.labels, known?.labels), at };
    if (checked.current) report.current = checked.current;
    if (checked.health) report.health = checked.health;
    record = ctx.agents.report(report, known, text);
  }
  ctx.metrics.lastCheckinAt = at;
  const { summary: s, rendered } = summary(ctx, record);
  const has = tags ?? (record.current?.etag === undefined ? undefined : [record.current.etag]);
  if (!matches(has, s.etag)) {
    ctx.metrics.checkins.target++;
    return { status: 200, served: rendered ?? served(ctx, record) };
  }
  if (wait === 0) {
    ctx.metrics.checkins.not_modified++;
    return { status: 304, etag: s.etag, pollAfterSeconds: s.pollAfterSeconds };
  }
  if (!ctx.longpoll.hasRoom()) {
    ctx.metrics.checkins.too_many_waiters++;
    throw new FleetwaveError(
      'TOO_MANY_WAITERS',
      'the server holds as many long-polls as it may; retry later',
      {
        details: { retryAfter: ctx.longpoll.retryAfterSeconds() },
      },
    );
  }
  return { status: 'wait', seconds: ctx.longpoll.grantedWait(wait), record, etag: s.etag };
}

/** Holds a check-in that waits: answered later by releaseWaiter or expireWaiter, through `to`. */
export function hold(
  ctx: Reconciler,
  outcome: Extract<CheckinOutcome, { status: 'wait' }>,
  to: AnswerSink,
): CheckinWaiter {
  const waiter: CheckinWaiter = {
    done: false,
    slot: 0,
    record: outcome.record,
    etag: outcome.etag,
    to,
  };
  ctx.longpoll.add(waiter, outcome.seconds);
  return waiter;
}

/**
 * GET /v1/agents/{id}/target: an agent reads its own target. An agent this replica has not
 * heard from is looked up in the store (its labels), so every replica answers: then a promise.
 */
export function readTarget(
  ctx: Reconciler,
  request: AgentRequest,
  id: string,
): AgentAnswer | Promise<AgentAnswer> {
  if (id !== request.agentId) {
    throw new FleetwaveError('FORBIDDEN', 'this credential belongs to another agent');
  }
  const record = ctx.agents.get(id);
  if (record) return targetAnswer(ctx, request, record);
  ready(ctx);
  return ctx.reports.get(id).then((row) => {
    if (!row) {
      throw new FleetwaveError(
        'NOT_FOUND',
        `agent ${id} has not enrolled or checked in; check in first`,
      );
    }
    const adopted = ctx.agents.adopt({
      id,
      labels: Object.freeze({ ...row.labels }),
      at: row.lastSeen,
      firstSeen: row.firstSeen,
    });
    return targetAnswer(ctx, request, adopted);
  });
}

function targetAnswer(ctx: Reconciler, request: AgentRequest, record: AgentRecord): AgentAnswer {
  const { summary: s, rendered } = summary(ctx, record);
  if (matches(ifNoneMatch(request.ifNoneMatch), s.etag)) {
    return { status: 304, etag: s.etag, pollAfterSeconds: s.pollAfterSeconds };
  }
  return { status: 200, served: rendered ?? served(ctx, record) };
}

/** A change happened: answer the waiter if its target moved. Shared by every waiter. */
export function releaseWaiter(ctx: Reconciler, waiter: CheckinWaiter): boolean {
  const targets = ctx.targets;
  if (!targets) return false;
  const result = targets.targetFor(waiter.record);
  if (!result.ok || result.target.etag === waiter.etag) return false;
  ctx.metrics.checkins.released++;
  waiter.to.answer({ status: 200, served: result });
  return true;
}

/** A wait ended (or the server drains): 304, come back after pollAfterSeconds. */
export function expireWaiter(ctx: Reconciler, waiter: CheckinWaiter): void {
  ctx.metrics.checkins.timeout++;
  const pollAfterSeconds = ctx.targets?.rollout.stable.model.fleet.spec.pollIntervalSeconds ?? 30;
  waiter.to.answer({ status: 304, etag: waiter.etag, pollAfterSeconds });
}
