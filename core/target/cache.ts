// Rendering as shared work. A TargetCache holds one revision's fleet and renders each distinct
// case once: the merge once per set of matching layers, the interpolation of labels, the
// artifact and the etag once per "label group" (agents equal on every label that matters:
// layer selector keys, interpolated labels, os and arch), and the Target object once per label
// group and wave. Serving a cached target costs a placement hash and a lookup, whatever the
// size of the config. When the config interpolates `${agent.id}`, each agent gets its own
// target, built from a precompiled template: only the strings holding the id and the mappings
// above them are new, and the etag hashes a precomputed canonical text with the id spliced in.
//
// Results are identical to renderTarget (render.ts); the property tests hold them to it.

import type { ConfigLayerDocument, FleetModel, ReleaseDocument, Wave } from '../fleet/model.ts';
import { matches, selectorKeys, type Labels } from '../fleet/selector.ts';
import { canonicalJson, etagOfCanonical } from './etag.ts';
import { isMapping, isSecretRef, mergeValues, setOwn, type Mapping } from './merge.ts';
import type { Agent, Content, Placement, RenderError, RenderResult, Target } from './model.ts';
import { assertPlaceable, bucketOf, fleetSalt, waveIndex } from './placement.ts';
import {
  artifactFor,
  deepFreeze,
  keyWinners,
  makeTarget,
  missingLabelError,
  releaseOf,
  type ConfigPath,
} from './render.ts';
import { labelsOf, parseTemplate, type Part } from './template.ts';

/** A merged config, compiled: constant subtrees are `lit`, strings to interpolate `tmpl`. */
type Compiled =
  | { kind: 'lit'; value: unknown }
  | { kind: 'tmpl'; parts: Part[] }
  | { kind: 'obj'; rawKeys: string[]; keys: string[]; nodes: Compiled[] }
  | { kind: 'list'; nodes: Compiled[] };

/** A compiled config with the labels filled in: what is left depends on the agent id only. */
type Bound =
  | { kind: 'lit'; value: unknown }
  /** A string: `pieces.join(agentId)`. */
  | { kind: 'id'; pieces: string[] }
  | { kind: 'obj'; keys: string[]; nodes: Bound[] }
  | { kind: 'list'; nodes: Bound[] };

/** Canonical JSON text with holes: a `string[]` segment is a string whose pieces join with the id. */
type Segment = string | string[];

interface Group {
  /** Equal for agents whose targets are equal up to their id (see groupOf). */
  key: string;
  render:
    | { ok: false; error: RenderError }
    /** The same content for every agent of the group: one result per wave, built once. */
    | { ok: true; content: Content; etag: string; results: Array<RenderResult | undefined> }
    /** Content that interpolates the id: built per agent from the bound template. */
    | {
        ok: true;
        config: Bound;
        /** Canonical text of the content, for the etag. */
        segments: Segment[];
        /** The target after its wave, as JSON.stringify prints it, for json(). */
        display: Segment[];
        base: Omit<Content, 'config'>;
      };
}

export interface TargetCacheOptions {
  /** Label groups kept before the cache starts over (bounds memory on hostile label sets). */
  maxGroups?: number;
}

export interface TargetCacheStats {
  /** Distinct label groups rendered. */
  groups: number;
  /** Distinct sets of matching layers merged. */
  merges: number;
}

function compile(value: unknown): Compiled {
  if (typeof value === 'string') {
    const parts = parseTemplate(value);
    if (parts.length === 1 && typeof parts[0] === 'string') return { kind: 'lit', value: parts[0] };
    return { kind: 'tmpl', parts };
  }
  if (Array.isArray(value)) {
    const nodes = value.map(compile);
    if (nodes.every((n) => n.kind === 'lit')) {
      return { kind: 'lit', value: deepFreeze(nodes.map((n) => (n as { value: unknown }).value)) };
    }
    return { kind: 'list', nodes };
  }
  if (isMapping(value)) {
    if (isSecretRef(value)) return { kind: 'lit', value: deepFreeze(value) };
    const winners = keyWinners(value);
    const keys = [...winners.keys()];
    const rawKeys = [...winners.values()];
    const nodes = rawKeys.map((raw) => compile(value[raw]));
    if (nodes.every((n) => n.kind === 'lit')) {
      const out: Mapping = {};
      keys.forEach((k, i) => setOwn(out, k, (nodes[i] as { value: unknown }).value));
      return { kind: 'lit', value: Object.freeze(out) };
    }
    return { kind: 'obj', rawKeys, keys, nodes };
  }
  return { kind: 'lit', value };
}

function labelsInValues(value: unknown, out: Set<string>): void {
  if (typeof value === 'string') {
    for (const label of labelsOf(parseTemplate(value))) out.add(label);
  } else if (Array.isArray(value)) {
    for (const item of value) labelsInValues(item, out);
  } else if (isMapping(value) && !isSecretRef(value)) {
    for (const key of Object.keys(value)) labelsInValues(value[key], out);
  }
}

function bind(
  node: Compiled,
  labels: Labels,
  missing: Map<string, ConfigPath | 'artifact'>,
  path: Array<string | number>,
): Bound {
  switch (node.kind) {
    case 'lit':
      return node;
    case 'tmpl': {
      const pieces: string[] = [];
      let current = '';
      for (const part of node.parts) {
        if (typeof part === 'string') current += part;
        else if ('id' in part) {
          pieces.push(current);
          current = '';
        } else if (Object.hasOwn(labels, part.label)) current += labels[part.label]!;
        else if (!missing.has(part.label)) missing.set(part.label, [...path]);
      }
      pieces.push(current);
      return pieces.length === 1 ? { kind: 'lit', value: pieces[0] } : { kind: 'id', pieces };
    }
    case 'obj': {
      const nodes = node.nodes.map((child, i) => {
        path.push(node.rawKeys[i]!);
        const out = bind(child, labels, missing, path);
        path.pop();
        return out;
      });
      if (nodes.every((n) => n.kind === 'lit')) {
        const out: Mapping = {};
        node.keys.forEach((k, i) => setOwn(out, k, (nodes[i] as { value: unknown }).value));
        return { kind: 'lit', value: Object.freeze(out) };
      }
      return { kind: 'obj', keys: node.keys, nodes };
    }
    case 'list': {
      const nodes = node.nodes.map((child, i) => {
        path.push(i);
        const out = bind(child, labels, missing, path);
        path.pop();
        return out;
      });
      if (nodes.every((n) => n.kind === 'lit')) {
        return {
          kind: 'lit',
          value: Object.freeze(nodes.map((n) => (n as { value: unknown }).value)),
        };
      }
      return { kind: 'list', nodes };
    }
  }
}

function build(node: Bound, id: string): unknown {
  switch (node.kind) {
    case 'lit':
      return node.value;
    case 'id':
      return node.pieces.join(id);
    case 'obj': {
      const out: Mapping = {};
      for (let i = 0; i < node.keys.length; i++)
        setOwn(out, node.keys[i]!, build(node.nodes[i]!, id));
      return Object.freeze(out);
    }
    case 'list':
      return Object.freeze(node.nodes.map((n) => build(n, id)));
  }
}

function appendText(out: Segment[], text: string): void {
  const last = out.length - 1;
  if (typeof out[last] === 'string') out[last] += text;
  else out.push(text);
}

/**
 * The JSON text of a bound config with holes for the id: canonical (sorted keys, as
 * canonicalJson prints the built value) for the etag, or as JSON.stringify prints it.
 */
function segmentsOf(node: Bound, out: Segment[], canonical: boolean): void {
  const text = (s: string) => appendText(out, s);
  switch (node.kind) {
    case 'lit':
      text(canonical ? canonicalJson(node.value) : (JSON.stringify(node.value) ?? 'null'));
      return;
    case 'id':
      out.push(node.pieces);
      return;
    case 'obj': {
      const order = node.keys.map((k, i) => [k, i] as const);
      if (canonical) order.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
      text('{');
      let first = true;
      for (const [key, i] of order) {
        const child = node.nodes[i]!;
        if (child.kind === 'lit' && skipped(child.value)) continue;
        text(`${first ? '' : ','}${JSON.stringify(key)}:`);
        segmentsOf(child, out, canonical);
        first = false;
      }
      text('}');
      return;
    }
    case 'list':
      text('[');
      node.nodes.forEach((child, i) => {
        if (i > 0) text(',');
        if (child.kind === 'lit' && skipped(child.value)) text('null');
        else segmentsOf(child, out, canonical);
      });
      text(']');
      return;
  }
}

/** What JSON.stringify leaves out of mappings (and prints as null in lists). */
function skipped(value: unknown): boolean {
  return value === undefined || typeof value === 'function' || typeof value === 'symbol';
}

function joinSegments(segments: readonly Segment[], id: string): string {
  let out = '';
  for (const s of segments) out += typeof s === 'string' ? s : JSON.stringify(s.join(id));
  return out;
}

export class TargetCache {
  readonly model: FleetModel;
  readonly revision: string;
  private readonly waves: readonly Wave[];
  private readonly salt: string;
  private readonly release: ReleaseDocument;
  private readonly layers: readonly ConfigLayerDocument[];
  /** Every label that can change what an agent receives, sorted. */
  private readonly relevant: readonly string[];
  private readonly maxGroups: number;
  private readonly groups = new Map<string, Group>();
  private readonly merged = new Map<string, Compiled>();
  /** JSON text of targets: printed once for shared ones, from segments for per-agent ones. */
  private readonly texts = new WeakMap<Target, string | { display: Segment[]; id: string }>();

  constructor(model: FleetModel, revision: string, options: TargetCacheOptions = {}) {
    assertPlaceable(model);
    this.model = model;
    this.revision = revision;
    this.waves = model.fleet.spec.waves;
    this.salt = fleetSalt(model.fleet);
    this.release = releaseOf(model);
    this.layers = model.layers;
    this.maxGroups = options.maxGroups ?? 100_000;
    const relevant = new Set<string>(['os', 'arch']);
    for (const layer of model.layers) {
      for (const key of selectorKeys(layer.spec.selector)) relevant.add(key);
      labelsInValues(layer.spec.values, relevant);
    }
    this.relevant = [...relevant].sort();
  }

  /** The labels whose values decide an agent's content (besides its id). */
  get relevantLabels(): readonly string[] {
    return this.relevant;
  }

  get stats(): TargetCacheStats {
    return { groups: this.groups.size, merges: this.merged.size };
  }

  place(agent: Agent): Placement {
    const bucket = bucketOf(this.salt, agent.id);
    const index = waveIndex(this.waves, bucket, agent.labels);
    return { bucket, index, wave: this.waves[index]!.name };
  }

  /** `index`: the agent's wave here when the caller has placed it already (place().index). */
  render(
    agent: Agent,
    index = waveIndex(this.waves, bucketOf(this.salt, agent.id), agent.labels),
  ): RenderResult {
    const wave = this.waves[index]!.name;
    const { render } = this.group(agent.labels);
    if (!render.ok) return { ok: false, wave, error: render.error };
    if ('results' in render) {
      let result = render.results[index];
      if (!result) {
        const target = Object.freeze(makeTarget(render.content, render.etag, this.revision, wave));
        result = Object.freeze({ ok: true as const, wave, target });
        render.results[index] = result;
      }
      return result;
    }
    const content: Content = {
      ...render.base,
      config: build(render.config, agent.id) as Mapping,
    };
    const etag = etagOfCanonical(joinSegments(render.segments, agent.id));
    const target = Object.freeze(makeTarget(content, etag, this.revision, wave));
    this.texts.set(target, { display: render.display, id: agent.id });
    return { ok: true, wave, target };
  }

  /**
   * The target's JSON text, exactly as JSON.stringify prints it, printing the parts agents
   * share only once: a response body that costs little more than its own bytes.
   */
  json(target: Target): string {
    const known = this.texts.get(target);
    if (typeof known === 'string') return known;
    if (known === undefined) {
      // Shared by every agent of a label group and wave (or not from this cache): print once.
      // Only a frozen target is sure to print the same next time.
      const text = JSON.stringify(target);
      if (Object.isFrozen(target)) this.texts.set(target, text);
      return text;
    }
    // Per agent: the group's text with the id spliced in. Only a few pieces are joined; the
    // shared text is never walked again.
    return (
      `{"etag":${JSON.stringify(target.etag)},"revision":${JSON.stringify(target.revision)},` +
      `"wave":${JSON.stringify(target.wave)}${joinSegments(known.display, known.id)}`
    );
  }

  /**
   * A key equal for agents whose contents are equal up to `${agent.id}`: the etag itself when
   * the config does not interpolate the id, otherwise a hash of the template. Agents that get
   * an error have the key `error:CODE:MESSAGE`. For grouping agents by what they receive.
   */
  groupOf(agent: Agent): string {
    return this.group(agent.labels).key;
  }

  private projection(labels: Labels): string {
    let key = '';
    for (const name of this.relevant) {
      const value = Object.hasOwn(labels, name) ? labels[name] : undefined;
      key += value === undefined ? '!,' : `${value.length}:${value},`;
    }
    return key;
  }

  private group(labels: Labels): Group {
    const key = this.projection(labels);
    let group = this.groups.get(key);
    if (!group) {
      if (this.groups.size >= this.maxGroups) {
        this.groups.clear();
        this.merged.clear();
      }
      group = this.renderGroup(labels);
      this.groups.set(key, group);
    }
    return group;
  }

  /** The matching layers, in merge order, and their merged, compiled values. */
  private merge(labels: Labels): { layers: ConfigLayerDocument[]; compiled: Compiled } {
    const layers: ConfigLayerDocument[] = [];
    let key = '';
    this.layers.forEach((layer, i) => {
      if (!matches(layer.spec.selector, labels)) return;
      layers.push(layer);
      key += `${i},`;
    });
    let compiled = this.merged.get(key);
    if (!compiled) {
      compiled = compile(mergeValues(layers.map((l) => l.spec.values)));
      this.merged.set(key, compiled);
    }
    return { layers, compiled };
  }

  private renderGroup(labels: Labels): Group {
    const failed = (error: RenderError): Group => ({
      key: `error:${error.code}:${error.message}`,
      render: { ok: false, error },
    });
    const artifact = artifactFor(this.release, labels);
    if (!artifact.ok && 'error' in artifact) return failed(artifact.error);
    const missing = new Map<string, ConfigPath | 'artifact'>();
    if (!artifact.ok) for (const label of artifact.missing) missing.set(label, 'artifact');
    const { layers, compiled } = this.merge(labels);
    const config = bind(compiled, labels, missing, []);
    if (missing.size > 0 || !artifact.ok) {
      return failed(missingLabelError(missing, layers, this.release));
    }
    const base = {
      version: this.release.spec.version,
      artifact: deepFreeze(artifact.artifact),
      pollAfterSeconds: this.model.fleet.spec.pollIntervalSeconds,
    };
    // The same text as canonicalContent (etag.ts), with holes where the id goes.
    const segments: Segment[] = [`{"artifact":${canonicalJson(base.artifact)},"config":`];
    segmentsOf(config, segments, true);
    appendText(
      segments,
      `,"pollAfterSeconds":${canonicalJson(base.pollAfterSeconds)},"version":${canonicalJson(base.version)}}`,
    );
    if (config.kind === 'lit') {
      const canonical = segments.join('');
      const etag = etagOfCanonical(canonical);
      const content: Content = { ...base, config: config.value as Mapping };
      return { key: etag, render: { ok: true, content, etag, results: [] } };
    }
    // JSON.stringify's order: `{"etag":…,"revision":…,"wave":…` then this, then the suffix.
    const display: Segment[] = [
      `,"version":${JSON.stringify(base.version)},"artifact":${JSON.stringify(base.artifact)},"config":`,
    ];
    segmentsOf(config, display, false);
    appendText(display, `,"pollAfterSeconds":${JSON.stringify(base.pollAfterSeconds)}}`);
    const key = `template:${etagOfCanonical(JSON.stringify(segments))}`;
    return { key, render: { ok: true, config, segments, display, base } };
  }
}
