// What a change between two revisions does to the fleet, wave by wave: the pure heart of
// `fleetwave plan` and of the pull-request comment. Agents are grouped by what they receive
// (one group per distinct pair of before/after contents), never listed one by one.

import { scan } from '../fleet/interpolation.ts';
import type { FleetModel, Selector, Wave } from '../fleet/model.ts';
import { matches, selectorKeys, type Labels } from '../fleet/selector.ts';
import type { SourceFile } from '../fleet/source.ts';
import type { CheckedDocument } from '../fleet/semantic.ts';
import { TargetCache } from '../target/cache.ts';
import type { Agent, RenderResult } from '../target/model.ts';
import { diffValues, jsonEqual, type ValueChange } from './diff.ts';
import { changedFiles, type FileChange } from './files.ts';

export interface PlanSide {
  commit: string;
  model: FleetModel;
  files: readonly SourceFile[];
  documents: readonly CheckedDocument[];
}

export interface GroupPlan {
  /** Agents in the group (with an inventory), or 0 for a group of synthesized agents. */
  agents: number;
  /** The labels every agent of the group has in common (among those that matter). */
  labels: Labels;
  /** How many distinct combinations of the labels that matter the group spans. */
  labelSets: number;
  /** Waves the group's agents are in, in rollout order. */
  waves: string[];
  before: { version: string; etag: string } | { error: string };
  after: { version: string; etag: string } | { error: string };
  artifactChanged: boolean;
  /** Config paths that differ between before and after. */
  changes: ValueChange[];
}

export interface WavePlan {
  index: number;
  wave: Wave;
  /** With an inventory: agents in the wave, and those whose target changes. */
  agents?: number;
  changed?: number;
}

export interface AgentError {
  id: string;
  code: string;
  message: string;
}

export interface Plan {
  base: string;
  head: string;
  files: FileChange[];
  version: { before: string; after: string };
  /** The waves the change passes through: the base revision's policy (DESIGN §1). */
  waves: WavePlan[];
  /** True when the change edits the rollout policy itself (it applies once the change is stable). */
  policyChanged: boolean;
  /** Groups whose target changes, largest first. */
  groups: GroupPlan[];
  /** Groups that receive exactly what they had. */
  unchangedGroups: number;
  /** Whether agents came from an inventory or were synthesized from the fleet's label values. */
  agentSource: 'inventory' | 'synthesized';
  agents: { total: number; changed: number; errors: AgentError[] };
}

export interface PlanOptions {
  /** Synthesized label combinations at most; beyond it, pass an inventory. */
  maxSynthesized?: number;
}

const ABSENT = Symbol('absent');

/** Every label value the fleet mentions, per relevant label: what a synthesized fleet needs. */
function labelSpace(
  models: FleetModel[],
  relevant: readonly string[],
): Map<string, Array<string | typeof ABSENT>> {
  const interpolated = new Set<string>();
  for (const m of models) for (const l of m.layers) interpolatedLabels(l.spec.values, interpolated);
  const values = new Map<string, Set<string>>(relevant.map((k) => [k, new Set()]));
  const selectorOnly = new Set<string>();
  const add = (key: string, v: string) => values.get(key)?.add(v);
  const visit = (s: Selector | undefined) => {
    for (const k of selectorKeys(s)) selectorOnly.add(k);
    for (const [k, v] of Object.entries(s?.matchLabels ?? {})) add(k, v);
    for (const r of s?.matchExpressions ?? []) for (const v of r.values ?? []) add(r.key, v);
  };
  for (const m of models) {
    for (const w of m.fleet.spec.waves) visit(w.selector);
    for (const l of m.layers) visit(l.spec.selector);
    for (const r of m.releases) {
      for (const a of r.spec.artifacts) {
        add('os', a.os);
        add('arch', a.arch);
      }
    }
  }
  const out = new Map<string, Array<string | typeof ABSENT>>();
  for (const key of relevant) {
    const vs: Array<string | typeof ABSENT> = [...(values.get(key) ?? [])].sort();
    // A label used only to select may be missing on some agents; an interpolated one may not.
    if (vs.length === 0) vs.push(`<${key}>`);
    else if (selectorOnly.has(key) && !interpolated.has(key) && key !== 'os' && key !== 'arch')
      vs.push(ABSENT);
    out.set(key, vs);
  }
  return out;
}

function interpolatedLabels(value: unknown, out: Set<string>): void {
  const stack = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v === 'string') {
      for (const t of scan(v)) if (t.reference?.kind === 'label') out.add(t.reference.name);
    } else if (Array.isArray(v)) stack.push(...v);
    else if (typeof v === 'object' && v !== null) stack.push(...Object.values(v));
  }
}

function synthesize(
  space: Map<string, Array<string | typeof ABSENT>>,
  max: number,
): Agent[] | undefined {
  let combos: Array<Record<string, string>> = [{}];
  for (const [key, values] of space) {
    if (combos.length * values.length > max) return undefined;
    combos = combos.flatMap((c) => values.map((v) => (v === ABSENT ? c : { ...c, [key]: v })));
  }
  // One placeholder id for all: a synthesized agent stands for every agent with its labels.
  return combos.map((labels) => ({ id: '<agent.id>', labels }));
}

/**
 * Whether an agent receives something new: a different etag. An agent that cannot be rendered
 * on either side (no artifact for its platform, a missing label) gets no target before or
 * after, so nothing new reaches it, whatever the two errors say.
 */
function targetChanges(before: RenderResult, after: RenderResult): boolean {
  if (before.ok && after.ok) return before.target.etag !== after.target.etag;
  return before.ok || after.ok;
}

function outcome(r: RenderResult): GroupPlan['before'] {
  return r.ok ? { version: r.target.version, etag: r.target.etag } : { error: r.error.message };
}

/** The waves an agent with these labels can fall in (the bucket decides which, per agent). */
function possibleWaves(waves: readonly Wave[], labels: Labels): string[] {
  const out: string[] = [];
  for (const w of waves) {
    if (w.percent > 0 && matches(w.selector, labels)) out.push(w.name);
    if (w.percent >= 100 && matches(w.selector, labels)) break;
  }
  return out;
}

export function plan(
  base: PlanSide,
  head: PlanSide,
  inventory?: readonly Agent[],
  options: PlanOptions = {},
): Plan {
  const before = new TargetCache(base.model, base.commit);
  const after = new TargetCache(head.model, head.commit);
  const waves = base.model.fleet.spec.waves;
  const relevant = [...new Set([...before.relevantLabels, ...after.relevantLabels])].sort();

  let agents: readonly Agent[];
  let agentSource: Plan['agentSource'] = 'inventory';
  if (inventory) agents = inventory;
  else {
    agentSource = 'synthesized';
    const max = options.maxSynthesized ?? 4096;
    const synthesized = synthesize(labelSpace([base.model, head.model], relevant), max);
    if (!synthesized) {
      throw new RangeError(
        `the fleet's labels combine in more than ${max} ways; pass an inventory to plan over real agents`,
      );
    }
    agents = synthesized;
  }

  const kindsOf = (file: string, side: 'base' | 'head') => [
    ...new Set(
      (side === 'base' ? base : head).documents
        .filter((d) => d.doc.origin.file === file)
        .map((d) => d.doc.kind),
    ),
  ];

  interface Acc {
    agents: number;
    representative: Agent;
    waves: Set<string>;
  }
  const groups = new Map<string, Acc>();
  const perWave = waves.map(() => ({ agents: 0, changed: 0 }));
  const errors: AgentError[] = [];
  let changed = 0;
  const project = (labels: Labels) => {
    const out: Record<string, string> = {};
    for (const k of relevant) if (Object.hasOwn(labels, k)) out[k] = labels[k]!;
    return out;
  };

  for (const agent of agents) {
    const key = `${before.groupOf(agent)}\n${after.groupOf(agent)}`;
    let acc = groups.get(key);
    if (!acc) {
      acc = {
        agents: 0,
        representative: { id: agent.id, labels: project(agent.labels) },
        waves: new Set(),
      };
      groups.set(key, acc);
    }
    acc.agents++;
    if (inventory) {
      const placement = before.place(agent);
      acc.waves.add(placement.wave);
      const b = before.render(agent);
      const a = after.render(agent);
      const differs = targetChanges(b, a);
      perWave[placement.index]!.agents++;
      if (differs) {
        perWave[placement.index]!.changed++;
        changed++;
      }
      if (!a.ok) errors.push({ id: agent.id, code: a.error.code, message: a.error.message });
    } else {
      for (const w of possibleWaves(waves, agent.labels)) acc.waves.add(w);
    }
  }

  // Agents that receive the same change form one group, whatever their labels: the group
  // says what changes and which labels its agents have in common.
  const byChange = new Map<string, GroupPlan & { members: Labels[] }>();
  let unchangedGroups = 0;
  const order = (w: string) => waves.findIndex((x) => x.name === w);
  for (const acc of groups.values()) {
    const agent = acc.representative;
    const b = before.render(agent);
    const a = after.render(agent);
    if (!targetChanges(b, a)) {
      unchangedGroups++;
      continue;
    }
    const change = {
      before: outcome(b),
      after: outcome(a),
      artifactChanged: b.ok && a.ok ? !jsonEqual(b.target.artifact, a.target.artifact) : true,
      changes: b.ok && a.ok ? diffValues(b.target.config, a.target.config) : [],
    };
    const signature = JSON.stringify([
      'error' in change.before ? change.before : change.before.version,
      'error' in change.after ? change.after : change.after.version,
      change.artifactChanged,
      change.changes,
    ]);
    let group = byChange.get(signature);
    if (!group) {
      group = { agents: 0, labels: {}, labelSets: 0, waves: [], ...change, members: [] };
      byChange.set(signature, group);
    }
    group.agents += inventory ? acc.agents : 0;
    group.members.push(agent.labels);
    group.waves = [...new Set([...group.waves, ...acc.waves])].sort((x, y) => order(x) - order(y));
  }
  const groupPlans: GroupPlan[] = [...byChange.values()].map(({ members, ...g }) => ({
    ...g,
    labels: commonLabels(members),
    labelSets: members.length,
  }));
  groupPlans.sort(
    (x, y) => y.agents - x.agents || labelKey(x.labels).localeCompare(labelKey(y.labels)),
  );

  return {
    base: base.commit,
    head: head.commit,
    files: changedFiles(base.files, head.files, kindsOf),
    version: { before: base.model.fleet.spec.version, after: head.model.fleet.spec.version },
    waves: waves.map((wave, index) => ({
      index,
      wave,
      ...(inventory ? { agents: perWave[index]!.agents, changed: perWave[index]!.changed } : {}),
    })),
    policyChanged: !jsonEqual(
      {
        waves: base.model.fleet.spec.waves,
        salt: base.model.fleet.spec.salt ?? base.model.fleet.metadata.name,
      },
      {
        waves: head.model.fleet.spec.waves,
        salt: head.model.fleet.spec.salt ?? head.model.fleet.metadata.name,
      },
    ),
    groups: groupPlans,
    unchangedGroups,
    agentSource,
    agents: { total: inventory ? agents.length : 0, changed: inventory ? changed : 0, errors },
  };
}

function commonLabels(members: readonly Labels[]): Labels {
  const [first, ...rest] = members;
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(first ?? {})) {
    if (rest.every((m) => m[k] === v)) out[k] = v;
  }
  return out;
}

export function labelKey(labels: Labels): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`)
    .join(', ');
}
