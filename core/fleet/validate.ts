// validateFleet: raw files in, every diagnostic and (when there are none) the typed fleet out.

import { compareDiagnostics, type Diagnostic } from '../diagnostics.ts';
import {
  KINDS,
  type AnyDocument,
  type ConfigLayerDocument,
  type FleetDocument,
  type FleetModel,
  type Kind,
  type ReleaseDocument,
} from './model.ts';
import { diagnosticAt, parseFile, positionOf, type ParsedDocument } from './parse.ts';
import { SCHEMA_FILES, kindOf, probableKind, validateSchema, type SchemaFault } from './schema.ts';
import { checkSemantics, type CheckedDocument, type PartialDocument } from './semantic.ts';
import { DEFAULT_LIMITS, type FleetSource, type Limits } from './source.ts';

export interface ValidationResult {
  diagnostics: Diagnostic[];
  errorCount: number;
  /** Present exactly when there are no errors. */
  model?: FleetModel;
  /** Every schema-valid document with its parse, for tools that point at nodes (plan, targets). */
  documents: CheckedDocument[];
}

const MODELINE = /^#\s*yaml-language-server:\s*\$schema=(\S+)/m;

function checkModeline(parsed: ParsedDocument, kind: Kind, out: Diagnostic[]): void {
  if (parsed.index !== 0) return;
  const m = MODELINE.exec(parsed.text.slice(0, 2048));
  const want = SCHEMA_FILES[kind];
  if (!m) {
    out.push(
      diagnosticAt(
        parsed.file.display,
        positionOf(parsed.lines, 0),
        'modeline',
        `add "# yaml-language-server: $schema=<path>/${want}" as the first line so editors check this file as you type`,
        'warning',
      ),
    );
  } else if (!m[1]!.endsWith(want)) {
    out.push(
      diagnosticAt(
        parsed.file.display,
        positionOf(parsed.lines, m.index),
        'modeline',
        `the schema modeline names ${m[1]}, but this is a ${kind}: use ${want}`,
        'warning',
      ),
    );
  }
}

export function validateFleet(
  source: FleetSource,
  limits: Limits = DEFAULT_LIMITS,
): ValidationResult {
  const diagnostics: Diagnostic[] = [...source.diagnostics];
  const files = [...source.files].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const checked: CheckedDocument[] = [];
  // Documents that break their schema: checked beyond it wherever they are sound.
  const partial: PartialDocument[] = [];
  // Where the schema already found a problem: one problem per node is enough.
  const schemaProblemsAt = new Set<string>();
  // Kinds with a document that failed its schema: cross-document checks about them would only
  // repeat that failure ("no Release for version 1.2" when the Release has a typo).
  const incomplete = new Set<Kind>();
  let documentCount = 0;

  // A file that could not be read, or a document whose kind is unclear, might have been the
  // missing Fleet or Release: saying "no Fleet document" as well would only mislead.
  const anyKind = (): void => KINDS.forEach((k) => incomplete.add(k));
  if (source.diagnostics.some((d) => d.severity === 'error')) anyKind();

  for (const file of files) {
    const { documents, diagnostics: parseProblems, unreadable } = parseFile(file, limits);
    diagnostics.push(...parseProblems);
    if (unreadable > 0) anyKind();
    for (const parsed of documents) {
      documentCount++;
      const kind = kindOf(parsed, diagnostics);
      if (!kind) {
        const meant = probableKind(parsed.value);
        if (meant) incomplete.add(meant);
        else anyKind();
        continue;
      }
      checkModeline(parsed, kind, diagnostics);
      const faults: SchemaFault[] = [];
      const problems = validateSchema(parsed, kind, faults);
      diagnostics.push(...problems);
      const doc = {
        ...(parsed.value as object),
        origin: { file: file.display, name: file.name, index: parsed.index },
      } as AnyDocument;
      if (problems.length > 0) {
        incomplete.add(kind);
        partial.push({ doc, parsed, faults });
        for (const p of problems) schemaProblemsAt.add(`${p.file}:${p.line}:${p.col}`);
        continue;
      }
      checked.push({ doc, parsed });
    }
  }

  const fileErrors = diagnostics.some((d) => d.severity === 'error');
  if (documentCount === 0 && !fileErrors) {
    diagnostics.push({
      file: source.root,
      line: 0,
      col: 0,
      severity: 'error',
      code: 'empty-fleet',
      message: 'no fleet documents found: expected fleet.yaml, releases/*.yaml and config/*.yaml',
    });
  } else if (documentCount > 0 || checked.length > 0) {
    diagnostics.push(
      ...checkSemantics(source.root, checked, incomplete, partial).filter(
        (d) => !schemaProblemsAt.has(`${d.file}:${d.line}:${d.col}`),
      ),
    );
  }

  diagnostics.sort(compareDiagnostics);
  const errorCount = diagnostics.filter((d) => d.severity === 'error').length;
  const result: ValidationResult = { diagnostics, errorCount, documents: checked };
  if (errorCount === 0) result.model = buildModel(checked);
  return result;
}

function buildModel(docs: CheckedDocument[]): FleetModel {
  const fleet = docs.find((d) => d.doc.kind === 'Fleet')!.doc as FleetDocument;
  const releases = docs
    .filter((d) => d.doc.kind === 'Release')
    .map((d) => d.doc as ReleaseDocument);
  const layers = docs
    .filter((d) => d.doc.kind === 'ConfigLayer')
    .map((d) => d.doc as ConfigLayerDocument)
    .sort(
      (a, b) =>
        a.spec.priority - b.spec.priority ||
        (a.origin.name < b.origin.name ? -1 : a.origin.name > b.origin.name ? 1 : 0) ||
        a.origin.index - b.origin.index,
    );
  return { fleet, releases, layers };
}
