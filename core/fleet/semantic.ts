// Everything a JSON Schema cannot say: references between documents, uniqueness, the shape of
// the wave list, selectors, interpolations, secrets, artifact URLs. A document that breaks its
// schema is still checked wherever its nodes are sound, so every problem shows at once.

import type { Diagnostic, DiagnosticCode } from '../diagnostics.ts';
import { parseDuration } from './duration.ts';
import { scan } from './interpolation.ts';
import type {
  AnyDocument,
  Artifact,
  ConfigLayerDocument,
  FleetDocument,
  Kind,
  ReleaseDocument,
  Selector,
} from './model.ts';
import { diagnosticAt, locate, locateInScalar, type ParsedDocument, type Path } from './parse.ts';
import type { SchemaFault } from './schema.ts';
import { findSecrets } from './secrets.ts';
import { selectorProblems } from './selector.ts';
import { expandSignatureUrl, namesArtifact, signatureUrlProblems } from './signature.ts';
import { didYouMean } from './suggest.ts';

export interface CheckedDocument {
  doc: AnyDocument;
  parsed: ParsedDocument;
}

/** A document that breaks its schema at `faults`; its `doc` is typed only where it is sound. */
export interface PartialDocument extends CheckedDocument {
  faults: readonly SchemaFault[];
}

// Faults that say nothing about a mapping's values: an unknown or a missing key leaves the
// values under the other keys as sound as they were.
const SHALLOW = new Set(['additionalProperties', 'required']);

/**
 * Whether the node at `path` exists and matches its schema: no fault at it or below it, and
 * none above it but for unknown or missing keys. A sound node is typed as the model says.
 */
function sound(d: PartialDocument, path: Path): boolean {
  for (const f of d.faults) {
    const n = Math.min(f.path.length, path.length);
    if (!f.path.slice(0, n).every((s, i) => s === path[i])) continue;
    if (f.path.length >= path.length || !SHALLOW.has(f.keyword)) return false;
  }
  return valueAt(d, path) !== undefined;
}

/** The raw value at `path`, whatever its type, or undefined. */
function valueAt(d: CheckedDocument, path: Path): unknown {
  let v: unknown = d.parsed.value;
  for (const s of path) {
    if (typeof v !== 'object' || v === null || !Object.hasOwn(v, s)) return undefined;
    v = (v as Record<string | number, unknown>)[s];
  }
  return v;
}

class Reporter {
  readonly out: Diagnostic[] = [];
  readonly root: string;
  constructor(root: string) {
    this.root = root;
  }

  at(
    d: CheckedDocument,
    path: Path,
    message: string,
    code: DiagnosticCode = 'invalid',
    at: 'key' | 'value' = 'value',
  ): void {
    this.out.push(diagnosticAt(d.parsed.file.display, locate(d.parsed, path, at), code, message));
  }
  inScalar(
    d: CheckedDocument,
    path: Path,
    needle: string,
    occurrence: number,
    message: string,
    code: DiagnosticCode,
  ): void {
    const pos = locateInScalar(d.parsed, path, needle, occurrence);
    this.out.push(diagnosticAt(d.parsed.file.display, pos, code, message));
  }
  warn(d: CheckedDocument, path: Path, message: string, code: DiagnosticCode): void {
    this.out.push(
      diagnosticAt(d.parsed.file.display, locate(d.parsed, path), code, message, 'warning'),
    );
  }
  fleetLevel(message: string, code: DiagnosticCode): void {
    this.out.push({ file: this.root, line: 0, col: 0, severity: 'error', code, message });
  }
}

function where(d: CheckedDocument, path: Path): string {
  const p = locate(d.parsed, path);
  return `${d.parsed.file.display}:${p.line}:${p.col}`;
}

export function checkSemantics(
  root: string,
  docs: CheckedDocument[],
  incomplete: ReadonlySet<Kind> = new Set(),
  partial: readonly PartialDocument[] = [],
): Diagnostic[] {
  const r = new Reporter(root);
  const fleets = docs.filter(
    (d): d is CheckedDocument & { doc: FleetDocument } => d.doc.kind === 'Fleet',
  );
  const releases = docs.filter(
    (d): d is CheckedDocument & { doc: ReleaseDocument } => d.doc.kind === 'Release',
  );
  const layers = docs.filter(
    (d): d is CheckedDocument & { doc: ConfigLayerDocument } => d.doc.kind === 'ConfigLayer',
  );

  checkUniqueNames(r, [
    ...docs,
    ...partial.filter((d) => sound(d, ['metadata', 'name']) && sound(d, ['kind'])),
  ]);
  if (fleets.length === 0 && !incomplete.has('Fleet')) {
    r.fleetLevel(
      'no Fleet document: a fleet needs exactly one (fleet.yaml with kind: Fleet)',
      'no-fleet',
    );
  }
  for (const extra of fleets.slice(1)) {
    r.at(
      extra,
      ['kind'],
      `a second Fleet document; a fleet has exactly one (the first is at ${where(fleets[0]!, ['kind'])})`,
      'duplicate-fleet',
    );
  }

  const versions = new Map<string, CheckedDocument>();
  for (const rel of releases) {
    const first = versions.get(rel.doc.spec.version);
    if (first) {
      r.at(
        rel,
        ['spec', 'version'],
        `release version "${rel.doc.spec.version}" is already defined at ${where(first, ['spec', 'version'])}`,
        'duplicate-version',
      );
    } else versions.set(rel.doc.spec.version, rel);
    checkRelease(r, rel);
  }

  const checkVersion = (fleet: CheckedDocument & { doc: FleetDocument }): void => {
    const version = fleet.doc.spec.version;
    if (!versions.has(version) && !incomplete.has('Release')) {
      const hint = didYouMean(version, [...versions.keys()]);
      const known =
        versions.size > 0
          ? ` (known: ${[...versions.keys()].sort().join(', ')})`
          : ' (there are no Release documents)';
      r.at(
        fleet,
        ['spec', 'version'],
        `version "${version}" has no Release${hint ? `; did you mean "${hint}"?` : known}`,
        'unknown-version',
      );
    }
  };
  const fleet = fleets[0];
  if (fleet) {
    checkVersion(fleet);
    checkWaves(r, fleet);
    secrets(r, fleet, fleet.doc.spec, ['spec']);
  }

  for (const layer of layers) {
    if (layer.doc.spec.selector)
      checkSelector(r, layer, layer.doc.spec.selector, ['spec', 'selector']);
    checkValues(r, layer);
    secrets(r, layer, layer.doc.spec.values, ['spec', 'values']);
  }

  for (const d of partial) {
    const spec = valueAt(d, ['spec']);
    if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) continue;
    const isSound: Sound = (path) => sound(d, path);
    if (d.doc.kind === 'Fleet') {
      const f = d as PartialDocument & { doc: FleetDocument };
      if (fleets.length === 0 && isSound(['spec', 'version'])) checkVersion(f);
      if (Array.isArray(valueAt(d, ['spec', 'waves']))) checkWaves(r, f, isSound);
      secrets(r, f, spec, ['spec']);
    } else if (d.doc.kind === 'Release') {
      checkRelease(r, d as PartialDocument & { doc: ReleaseDocument }, isSound);
    } else {
      const layer = d as PartialDocument & { doc: ConfigLayerDocument };
      if (isSound(['spec', 'selector']))
        checkSelector(r, layer, layer.doc.spec.selector!, ['spec', 'selector']);
      if (isSound(['spec', 'values'])) {
        checkValues(r, layer);
        secrets(r, layer, layer.doc.spec.values, ['spec', 'values']);
      }
    }
  }
  return r.out;
}

/** Whether the node at a path is sound; always, for a document that matches its schema. */
type Sound = (path: Path) => boolean;
const WHOLE: Sound = () => true;

function checkUniqueNames(r: Reporter, docs: CheckedDocument[]): void {
  const seen = new Map<string, CheckedDocument>();
  let fleets = 0;
  for (const d of docs) {
    // A second Fleet is an error of its own; that it may share the first one's name is not news.
    if (d.doc.kind === 'Fleet' && fleets++ > 0) continue;
    const key = `${d.doc.kind}/${d.doc.metadata.name}`;
    const first = seen.get(key);
    if (first) {
      r.at(
        d,
        ['metadata', 'name'],
        `${d.doc.kind} "${d.doc.metadata.name}" is already defined at ${where(first, ['metadata', 'name'])}`,
        'duplicate-name',
      );
    } else seen.set(key, d);
  }
}

function checkSelector(r: Reporter, d: CheckedDocument, selector: Selector, base: Path): void {
  for (const p of selectorProblems(selector))
    r.at(d, [...base, ...p.path], p.message, 'selector', p.at);
}

function checkWaves(
  r: Reporter,
  fleet: CheckedDocument & { doc: FleetDocument },
  isSound: Sound = WHOLE,
): void {
  const waves = fleet.doc.spec.waves;
  const names = new Map<string, number>();
  waves.forEach((wave, i) => {
    const base = ['spec', 'waves', i];
    if (!isSound(base)) {
      // A wave with an unknown or missing key: its selector can still be checked.
      if (isSound([...base, 'selector']))
        checkSelector(r, fleet, wave.selector!, [...base, 'selector']);
      return;
    }
    const first = names.get(wave.name);
    if (first !== undefined) {
      r.at(
        fleet,
        [...base, 'name'],
        `wave name "${wave.name}" is already used by wave ${first}`,
        'duplicate-name',
      );
    } else names.set(wave.name, i);
    if (wave.selector) checkSelector(r, fleet, wave.selector, [...base, 'selector']);
    const gates = wave.gates;
    if (gates) {
      const gateNames = new Set<string>();
      (gates.prometheus ?? []).forEach((g, j) => {
        const gp = [...base, 'gates', 'prometheus', j];
        if (gateNames.has(g.name))
          r.at(
            fleet,
            [...gp, 'name'],
            `prometheus gate "${g.name}" is defined twice in this wave`,
            'duplicate-name',
          );
        gateNames.add(g.name);
        if (g.min === undefined && g.max === undefined) {
          r.at(
            fleet,
            gp,
            `prometheus gate "${g.name}" needs "min", "max" or both`,
            'invalid',
            'value',
          );
        } else if (g.min !== undefined && g.max !== undefined && g.min > g.max) {
          r.at(
            fleet,
            [...gp, 'min'],
            `min ${g.min} is greater than max ${g.max}: the gate could never pass`,
            'invalid',
          );
        }
      });
      if (gates.applyDeadline && gates.minAppliedRatio === undefined) {
        r.at(
          fleet,
          [...base, 'gates', 'applyDeadline'],
          'applyDeadline needs minAppliedRatio (the share that must have applied by the deadline)',
          'invalid',
          'key',
        );
      }
      const bake = parseDuration(wave.bake);
      const failAfter = gates.failAfter ? parseDuration(gates.failAfter) : undefined;
      if (bake !== undefined && failAfter !== undefined && failAfter <= bake) {
        r.at(
          fleet,
          [...base, 'gates', 'failAfter'],
          `failAfter (${gates.failAfter}) must be longer than the wave's bake (${wave.bake})`,
          'invalid',
        );
      }
    }
  });
  const last = waves[waves.length - 1];
  if (last && isSound(['spec', 'waves', waves.length - 1])) {
    const i = waves.length - 1;
    if (last.selector) {
      r.at(
        fleet,
        ['spec', 'waves', i, 'selector'],
        `the last wave ("${last.name}") must select everyone left: remove its selector`,
        'last-wave',
        'key',
      );
    }
    if (last.percent !== 100) {
      r.at(
        fleet,
        ['spec', 'waves', i, 'percent'],
        `the last wave ("${last.name}") must be at 100 percent, not ${last.percent}, or some agents would never be updated`,
        'last-wave',
      );
    }
  }
}

function checkRelease(
  r: Reporter,
  rel: CheckedDocument & { doc: ReleaseDocument },
  isSound: Sound = WHOLE,
): void {
  const seen = new Map<string, number>();
  // A URL already reported (e.g. for credentials) is not reported again as a plaintext secret.
  const reported = new Set<string>();
  const url = (path: Path, value: string, what: string): void => {
    const problem = httpsProblem(value, what);
    if (!problem) return;
    r.at(rel, path, problem, 'invalid-url');
    reported.add(path.join('\0'));
  };
  const artifacts = Array.isArray(rel.doc.spec.artifacts) ? rel.doc.spec.artifacts : [];
  artifacts.forEach((a, i) => {
    if (!isSound(['spec', 'artifacts', i])) return;
    const key = `${a.os}/${a.arch}`;
    const first = seen.get(key);
    if (first !== undefined) {
      r.at(
        rel,
        ['spec', 'artifacts', i],
        `a second artifact for ${key} (the first is artifacts[${first}]); a release has one artifact per os/arch`,
        'duplicate-artifact',
      );
    } else seen.set(key, i);
    url(['spec', 'artifacts', i, 'url'], a.url, 'artifact URLs');
  });
  const signatures = [
    'signature' in rel.doc.spec ? ['spec', 'signature'] : ['spec'],
    ['spec', 'artifacts'],
  ];
  if (signatures.every(isSound)) checkSignatures(r, rel, url);
  for (const f of findSecrets(rel.doc.spec, ['spec'])) {
    if (!reported.has(f.path.join('\0'))) r.at(rel, f.path, f.message, 'plaintext-secret', f.at);
  }
}

/**
 * Signature URLs: only known placeholders, an https URL for each artifact once filled in, and
 * a release-wide URL that names each artifact's file when several artifacts use it.
 */
function checkSignatures(
  r: Reporter,
  rel: CheckedDocument & { doc: ReleaseDocument },
  url: (path: Path, value: string, what: string) => void,
): void {
  const { spec } = rel.doc;
  // A template with a bad placeholder is reported as such, not as the URL it would make.
  const placeholdersOk = (path: Path, template: string): boolean => {
    const problems = signatureUrlProblems(template);
    const seen = new Map<string, number>();
    for (const p of problems) {
      // Each at the token itself; the same token twice, at each place it is written.
      const occurrence = seen.get(p.raw) ?? 0;
      seen.set(p.raw, occurrence + 1);
      r.inScalar(rel, path, p.raw, occurrence, p.message, 'invalid-url');
    }
    return problems.length === 0;
  };
  // An artifact URL already reported is not reported again through `${artifact.url}`.
  const artifactUrlOk = (a: Artifact): boolean => httpsProblem(a.url) === undefined;
  spec.artifacts.forEach((a, i) => {
    if (!a.signature) return;
    const path: Path = ['spec', 'artifacts', i, 'signature', 'url'];
    if (!placeholdersOk(path, a.signature.url)) return;
    if (namesArtifact(a.signature.url) && !artifactUrlOk(a)) return;
    url(path, expandSignatureUrl(a.signature.url, a), 'signature URLs');
  });
  const shared = spec.signature;
  if (!shared) return;
  const path: Path = ['spec', 'signature', 'url'];
  if (!placeholdersOk(path, shared.url)) return;
  const users = spec.artifacts.filter((a) => !a.signature);
  if (!namesArtifact(shared.url)) {
    url(path, shared.url, 'signature URLs');
    if (users.length > 1) {
      r.at(
        rel,
        path,
        `${users.length} artifacts would share this signature file, but a signature covers one artifact's bytes: name each artifact's file (e.g. "\${artifact.url}.sig") or give each artifact its own signature`,
      );
    }
    return;
  }
  // Filled in for each artifact; the first problem only, the others would say the same.
  for (const a of users.filter(artifactUrlOk)) {
    const expanded = expandSignatureUrl(shared.url, a);
    if (httpsProblem(expanded) !== undefined) return url(path, expanded, 'signature URLs');
  }
}

export function httpsProblem(url: string, what = 'URLs'): string | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return `"${url}" is not a valid URL; write an absolute https:// URL`;
  }
  if (u.protocol !== 'https:') return `${what} must use https, not ${u.protocol.replace(':', '')}`;
  if (u.username || u.password)
    return `${what} must not carry credentials (the "user:password@" part): everyone who reads the fleet can see them`;
  if (!u.hostname) return `"${url}" has no host`;
  return undefined;
}

function checkValues(r: Reporter, layer: CheckedDocument & { doc: ConfigLayerDocument }): void {
  const stack: Array<[unknown, Path]> = [[layer.doc.spec.values, ['spec', 'values']]];
  while (stack.length > 0) {
    const [value, path] = stack.pop()!;
    if (typeof value === 'string') {
      const seen = new Map<string, number>();
      for (const t of scan(value)) {
        // The same mistake twice in one string is reported at each place it is written.
        const occurrence = seen.get(t.raw) ?? 0;
        seen.set(t.raw, occurrence + 1);
        if (t.problem) r.inScalar(layer, path, t.raw, occurrence, t.problem, 'interpolation');
      }
    } else if (Array.isArray(value)) {
      value.forEach((v, i) => stack.push([v, [...path, i]]));
    } else if (typeof value === 'object' && value !== null) {
      for (const [k, v] of Object.entries(value)) {
        if (k === '<<') {
          r.at(
            layer,
            [...path, k],
            'merge keys ("<<") are not supported: in YAML 1.2 "<<" is an ordinary key, so the agent would get it as one; write the keys out, or move them to a lower-priority layer',
            'invalid',
            'key',
          );
        }
        if (scan(k).length > 0) {
          r.at(
            layer,
            [...path, k],
            `keys cannot be interpolated (${JSON.stringify(k)}); only values may use \${agent.id} and \${agent.labels.NAME}`,
            'interpolation',
            'key',
          );
        }
        stack.push([v, [...path, k]]);
      }
    }
  }
}

function secrets(r: Reporter, d: CheckedDocument, value: unknown, base: Path): void {
  for (const f of findSecrets(value, [...base]))
    r.at(d, f.path, f.message, 'plaintext-secret', f.at);
}
