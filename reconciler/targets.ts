// What each agent is served under the current rollout: its wave comes from the STABLE
// revision's policy (DESIGN §1); waves 0..k of the candidate get the candidate's target, the
// rest the stable one. Rendering is core/target's TargetCache (each distinct target rendered
// once per revision); each target object is serialized once.

import type { Agent, Labels, RenderError, Target } from '../core/target/model.ts';
import { TargetCache } from '../core/target/cache.ts';
import { makeTarget } from '../core/target/render.ts';
import { runningRevision } from '../core/rollout/observations.ts';
import type { ServedRollout } from './sync.ts';

export type Served =
  | { ok: true; target: Target; body: string; waveIndex: number }
  | { ok: false; wave: string; error: RenderError };

/** What a check-in that is answered 304 needs to know of an agent's target. */
export interface Summary {
  etag: string;
  wave: string;
  revision: string;
  pollAfterSeconds: number;
}

/**
 * What an agent is judged to run under a rollout: the one answer to "which revision does this
 * agent run", used by the gates, /v1/status, metrics and the page alike (all read the store).
 */
export interface Judgement {
  wave: number;
  waveName: string;
  /**
   * The candidate when the agent is on waves 0..k and reports its candidate target's etag,
   * else stable when it reports its stable target's etag (so an agent whose two targets are
   * equal counts where it is served), else the candidate when it reports that etag anyway;
   * null when it reports neither (core/rollout/observations.ts cohortOf).
   */
  revision: string | null;
  /** The revision of the target the agent reports it could not apply, when it is one of ours. */
  failedRevision: string | null;
}

/** `rendered` is there when the summary had to be computed: a 200 then needs no second render. */
export type Summarized =
  | { ok: true; summary: Summary; rendered?: Extract<Served, { ok: true }> }
  | Extract<Served, { ok: false }>;

/** Whether two label sets are equal (own keys and values). */
export function sameLabels(a: Labels, b: Labels): boolean {
  if (a === b) return true;
  let n = 0;
  for (const key in a) {
    if (!Object.hasOwn(a, key)) continue;
    if (!Object.hasOwn(b, key) || a[key] !== b[key]) return false;
    n++;
  }
  for (const key in b) if (Object.hasOwn(b, key)) n--;
  return n === 0;
}

// Serialized bodies, shared by every agent that receives the same target object.
const bodies = new WeakMap<Target, string>();
// A candidate target re-labelled with the stable policy's wave name, per wave name.
const relabelled = new WeakMap<Target, Map<string, Target>>();

function bodyOf(target: Target): string {
  let body = bodies.get(target);
  if (body === undefined) {
    body = JSON.stringify(target);
    bodies.set(target, body);
  }
  return body;
}

function withWave(target: Target, wave: string): Target {
  if (target.wave === wave) return target;
  let byWave = relabelled.get(target);
  if (!byWave) {
    byWave = new Map();
    relabelled.set(target, byWave);
  }
  let out = byWave.get(wave);
  if (!out) {
    out = Object.freeze(makeTarget(target, target.etag, target.revision, wave));
    byWave.set(wave, out);
  }
  return out;
}

export class Targets {
  readonly rollout: ServedRollout;
  private readonly stable: TargetCache;
  private readonly candidate: TargetCache | undefined;
  private readonly candidateWave: number;
  /**
   * Per agent record, the summary of its last target under this rollout and the labels it was
   * rendered for: most check-ins are 304s, and for them rendering (a target per agent when the
   * config interpolates the id) would be most of the cost. A new rollout is a new Targets, so
   * a memo never outlives what it was computed from.
   */
  private readonly summaries = new WeakMap<Agent, { labels: Labels; summary: Summary }>();

  /** `previous` lends its caches for revisions that did not change. */
  constructor(rollout: ServedRollout, previous?: Targets) {
    this.rollout = rollout;
    const reuse = (commit: string): TargetCache | undefined =>
      [previous?.stable, previous?.candidate].find((c) => c?.revision === commit);
    this.stable =
      reuse(rollout.stable.commit) ?? new TargetCache(rollout.stable.model, rollout.stable.commit);
    this.candidate = rollout.candidate
      ? (reuse(rollout.candidate.commit) ??
        new TargetCache(rollout.candidate.model, rollout.candidate.commit))
      : undefined;
    this.candidateWave = rollout.candidate?.wave ?? -1;
  }

  /** The stable policy's wave names, in order. */
  get waveNames(): string[] {
    return this.stable.model.fleet.spec.waves.map((w) => w.name);
  }

  targetFor(agent: Agent): Served {
    const placement = this.stable.place(agent);
    const cache =
      this.candidate && placement.index <= this.candidateWave ? this.candidate : this.stable;
    // Placed by the stable cache already: the same hash need not be computed twice.
    const result =
      cache === this.stable ? cache.render(agent, placement.index) : cache.render(agent);
    if (!result.ok) return { ok: false, wave: placement.wave, error: result.error };
    const target = withWave(result.target, placement.wave);
    this.summaries.set(agent, {
      labels: agent.labels,
      summary: {
        etag: target.etag,
        wave: target.wave,
        revision: target.revision,
        pollAfterSeconds: target.pollAfterSeconds,
      },
    });
    // The cache prints a per-agent target from its group's text with the id spliced in.
    const body = target === result.target ? cache.json(target) : bodyOf(target);
    return { ok: true, target, body, waveIndex: placement.index };
  }

  /** What the agent runs, judged from the etags it reports (see Judgement). */
  judge(agent: Agent, etag: string | undefined, failedEtag: string | undefined): Judgement {
    const placement = this.stable.place(agent);
    const candidate = this.candidate;
    const servedFrom = candidate && placement.index <= this.candidateWave ? candidate : this.stable;
    // The target it is served was summarized when it was last served (a release renders every
    // waiting agent just before the re-judging of the whole registry): its etag is that one.
    const memo = this.summaries.get(agent);
    const servedEtag =
      memo && sameLabels(memo.labels, agent.labels) ? memo.summary.etag : undefined;
    const etagOf = (cache: TargetCache | undefined): string | undefined => {
      if (!cache) return undefined;
      if (cache === servedFrom && servedEtag !== undefined) return servedEtag;
      const r = cache === this.stable ? cache.render(agent, placement.index) : cache.render(agent);
      return r.ok ? r.target.etag : undefined;
    };
    const { revision, failedRevision } = runningRevision({
      inWaves: placement.index <= this.candidateWave,
      etag,
      failedEtag,
      candidate: candidate && { revision: candidate.revision, etag: etagOf(candidate) },
      stable: {
        revision: this.stable.revision,
        etag: etag !== undefined || failedEtag !== undefined ? etagOf(this.stable) : undefined,
      },
    });
    return { wave: placement.index, waveName: placement.wave, revision, failedRevision };
  }

  /** What targetFor(agent) would serve, without building it again when its labels are the same. */
  summaryFor(agent: Agent): Summarized {
    const memo = this.summaries.get(agent);
    if (memo && sameLabels(memo.labels, agent.labels)) {
      memo.labels = agent.labels;
      return { ok: true, summary: memo.summary };
    }
    const result = this.targetFor(agent);
    return result.ok
      ? { ok: true, summary: this.summaries.get(agent)!.summary, rendered: result }
      : result;
  }
}
