// Rendering an agent's target from one revision's fleet, straight from the definition: the
// Release's artifact for the agent's os/arch (with its signature reference when the Release
// signs it), the deep merge of every matching ConfigLayer, interpolation of `${agent.id}` and
// `${agent.labels.NAME}` (secretRefs untouched). This is the reference: TargetCache
// (cache.ts) gives the same results without redoing shared work.

import { FleetwaveError } from '../errors.ts';
import type { ConfigLayerDocument, FleetModel, ReleaseDocument } from '../fleet/model.ts';
import { matches, type Labels } from '../fleet/selector.ts';
import { signatureOf } from '../fleet/signature.ts';
import { etagOf } from './etag.ts';
import { isMapping, isSecretRef, mergeValues, setOwn, type Mapping } from './merge.ts';
import type { Agent, Content, RenderError, RenderResult, Target, TargetArtifact } from './model.ts';
import { place } from './placement.ts';
import { parseTemplate, unescapeKey } from './template.ts';

/** A place in a config, for messages: `output.endpoint`, `collectors.disk.ignoreMounts[0]`. */
export type ConfigPath = ReadonlyArray<string | number>;

export function formatPath(path: ConfigPath): string {
  let out = '';
  for (const seg of path)
    out += typeof seg === 'number' ? `[${seg}]` : out === '' ? seg : `.${seg}`;
  return out;
}

export function releaseOf(model: FleetModel): ReleaseDocument {
  const version = model.fleet.spec.version;
  const release = model.releases.find((r) => r.spec.version === version);
  if (!release) {
    throw new FleetwaveError('FLEET_INVALID', `version "${version}" has no Release`);
  }
  return release;
}

/** The layers that select these labels, in merge order. */
export function matchingLayers(model: FleetModel, labels: Labels): ConfigLayerDocument[] {
  return model.layers.filter((layer) => matches(layer.spec.selector, labels));
}

export type ArtifactResult =
  | { ok: true; artifact: TargetArtifact }
  | { ok: false; missing: string[] }
  | { ok: false; error: RenderError };

/** The release's artifact for the agent's `os`/`arch` labels. */
export function artifactFor(release: ReleaseDocument, labels: Labels): ArtifactResult {
  const missing = ['arch', 'os'].filter((k) => !Object.hasOwn(labels, k));
  if (missing.length > 0) return { ok: false, missing };
  const os = labels['os']!;
  const arch = labels['arch']!;
  const found = release.spec.artifacts.find((a) => a.os === os && a.arch === arch);
  if (found) {
    const signature = signatureOf(release.spec, found);
    const artifact: TargetArtifact = signature
      ? { url: found.url, sha256: found.sha256, signature }
      : { url: found.url, sha256: found.sha256 };
    return { ok: true, artifact };
  }
  const known = release.spec.artifacts.map((a) => `${a.os}/${a.arch}`).join(', ');
  return {
    ok: false,
    error: {
      code: 'no-artifact',
      os,
      arch,
      message: `release ${release.spec.version} has no artifact for ${os}/${arch} (it has ${known || 'none'})`,
    },
  };
}

/** The value at `path` in raw (merged or layer) values, following raw keys. */
function hasPath(values: unknown, path: ConfigPath): boolean {
  let current = values;
  for (const seg of path) {
    if (typeof seg === 'number') {
      if (!Array.isArray(current) || seg >= current.length) return false;
      current = current[seg];
    } else {
      if (!isMapping(current) || !Object.hasOwn(current, seg)) return false;
      current = current[seg];
    }
  }
  return true;
}

/**
 * The missing-label error for an agent: `uses` maps each label the agent lacks to the first
 * config path (raw keys) that interpolates it, or to 'artifact' for os/arch.
 */
export function missingLabelError(
  uses: ReadonlyMap<string, ConfigPath | 'artifact'>,
  layers: readonly ConfigLayerDocument[],
  release: ReleaseDocument,
): RenderError {
  const labels = [...uses.keys()].sort();
  const reasons = labels.map((label) => {
    const use = uses.get(label)!;
    if (use === 'artifact') {
      return `no "${label}" label, which picks the artifact of release ${release.spec.version}`;
    }
    // The value that won the merge comes from the last matching layer defining its path.
    const layer = [...layers].reverse().find((l) => hasPath(l.spec.values, use));
    const from = layer ? ` (ConfigLayer ${layer.metadata.name}, ${layer.origin.file})` : '';
    return `no "${label}" label, which config ${formatPath(use.map((s) => (typeof s === 'string' ? unescapeKey(s) : s)))} interpolates${from}`;
  });
  return { code: 'missing-label', labels, message: `agent has ${reasons.join('; ')}` };
}

/**
 * Each key as the agent sees it (`$${` unescaped), with the raw key whose value it takes. Two
 * raw keys can unescape alike (`a$${b${c` and `a${b$${c`): the later wins, at the first one's
 * place, as assignment would.
 */
export function keyWinners(value: Mapping): Map<string, string> {
  const out = new Map<string, string>();
  for (const raw of Object.keys(value)) out.set(unescapeKey(raw), raw);
  return out;
}

/**
 * Interpolates every string of `value` except inside secretRefs; unescapes keys. Records the
 * first path of each label the agent lacks into `missing` (and then returns a value that must
 * not be used).
 */
export function interpolate(
  value: unknown,
  agent: Agent,
  missing: Map<string, ConfigPath | 'artifact'>,
  path: Array<string | number> = [],
): unknown {
  if (typeof value === 'string') {
    let out = '';
    for (const part of parseTemplate(value)) {
      if (typeof part === 'string') out += part;
      else if ('id' in part) out += agent.id;
      else if (Object.hasOwn(agent.labels, part.label)) out += agent.labels[part.label]!;
      else if (!missing.has(part.label)) missing.set(part.label, [...path]);
    }
    return out;
  }
  if (Array.isArray(value)) {
    return value.map((item, i) => {
      path.push(i);
      const out = interpolate(item, agent, missing, path);
      path.pop();
      return out;
    });
  }
  if (isMapping(value)) {
    if (isSecretRef(value)) return value;
    const out: Mapping = {};
    for (const [key, raw] of keyWinners(value)) {
      path.push(raw);
      setOwn(out, key, interpolate(value[raw], agent, missing, path));
      path.pop();
    }
    return out;
  }
  return value;
}

export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const key of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[key]);
  }
  return value;
}

/** Renders one agent's target with no caching: the definition TargetCache must agree with. */
export function renderTarget(model: FleetModel, revision: string, agent: Agent): RenderResult {
  const { wave } = place(model, agent);
  const release = releaseOf(model);
  const artifact = artifactFor(release, agent.labels);
  if (!artifact.ok && 'error' in artifact) return { ok: false, wave, error: artifact.error };
  const missing = new Map<string, ConfigPath | 'artifact'>();
  if (!artifact.ok) for (const label of artifact.missing) missing.set(label, 'artifact');
  const layers = matchingLayers(model, agent.labels);
  const config = interpolate(
    mergeValues(layers.map((l) => l.spec.values)),
    agent,
    missing,
  ) as Mapping;
  if (missing.size > 0 || !artifact.ok) {
    return { ok: false, wave, error: missingLabelError(missing, layers, release) };
  }
  const content: Content = {
    version: release.spec.version,
    artifact: artifact.artifact,
    config,
    pollAfterSeconds: model.fleet.spec.pollIntervalSeconds,
  };
  return {
    ok: true,
    wave,
    target: deepFreeze(makeTarget(content, etagOf(content), revision, wave)),
  };
}

/** The target object, with its keys in the order of DESIGN §5. */
export function makeTarget(content: Content, etag: string, revision: string, wave: string): Target {
  return {
    etag,
    revision,
    wave,
    version: content.version,
    artifact: content.artifact,
    config: content.config,
    pollAfterSeconds: content.pollAfterSeconds,
  };
}
