// A diagnostic is one mistake in a fleet, located at the node that causes it.
// Every producer (YAML syntax, schema, semantic checks, file limits) emits this one shape;
// the CLI, the GitHub Action and the reconciler's status only format it.

export type Severity = 'error' | 'warning';

/** Every diagnostic code, with what it means. docs/diagnostics.md documents each (a test checks). */
export const DIAGNOSTIC_CODES = {
  'yaml-syntax': 'The file is not well-formed YAML.',
  'yaml-warning': 'YAML the parser accepts but that is probably a mistake (an unknown tag).',
  'duplicate-key': 'A key appears twice in one mapping.',
  'not-utf8': 'The file is not valid UTF-8.',
  'too-deep': 'Mappings and lists nest deeper than the limit (64 levels).',
  'too-many-aliases': 'YAML aliases expand to more nodes than the limit (a "billion laughs" file).',
  'too-large': 'A file, or the fleet or inventory in total, is larger than the limit.',
  'too-many-files': 'The fleet has more files than the limit.',
  'not-a-file': 'A fleet path is not a regular file (a FIFO, a device).',
  unreadable: 'A file could not be read (permissions, I/O error).',
  symlink: 'A symlink points outside the fleet directory, to nothing, or in a loop.',
  'empty-fleet': 'The fleet directory holds no fleet documents.',
  'not-a-mapping': 'A document or an entry is not a mapping where one is expected.',
  schema: "A value does not match its kind's JSON Schema (type, range, pattern, required key).",
  'unknown-key': 'A key the schema does not know (often a typo: see the suggestion).',
  'unknown-kind': 'A document whose kind is not Fleet, Release or ConfigLayer.',
  'no-fleet': 'The fleet has no Fleet document.',
  'duplicate-fleet': 'The fleet has more than one Fleet document.',
  'duplicate-name': 'Two documents of one kind, two waves or two gates share a name.',
  'duplicate-version': 'Two Releases have the same version.',
  'unknown-version': 'The Fleet asks for a version that no Release defines.',
  'duplicate-artifact': 'A Release has two artifacts for one os/arch.',
  'invalid-url':
    'An artifact or signature URL is not an absolute https URL without credentials, or a signature URL uses a placeholder other than ${artifact.url}, ${artifact.os}, ${artifact.arch}, ${artifact.sha256}.',
  'last-wave': 'The last wave has a selector or is below 100 percent.',
  selector:
    'A label selector is malformed (bad key or value, In without values, Exists with values).',
  interpolation: 'A string interpolates something other than ${agent.id} or ${agent.labels.NAME}.',
  'plaintext-secret': 'A secret is written as a literal; it must be a secretRef.',
  invalid: 'A value breaks a rule between fields (min above max, a deadline without its ratio).',
  modeline: 'The yaml-language-server schema modeline is missing or names the wrong schema.',
  'not-a-list': 'An inventory is not a list of agents.',
  'missing-id': 'An inventory entry has no id.',
  'invalid-id': 'An inventory id is not a non-empty string.',
  'duplicate-id': 'Two inventory entries have the same id.',
  'invalid-labels': "An inventory entry's labels are not a mapping.",
  'non-string-label': 'An inventory label value is not a string.',
  'too-many-agents': 'The inventory has more agents than the limit.',
  'too-many-problems': 'More problems than are reported one by one; the rest are counted.',
} as const;

export type DiagnosticCode = keyof typeof DIAGNOSTIC_CODES;

export interface Diagnostic {
  /** Path of the file, relative to the fleet root's parent as given by the source. */
  file: string;
  /** 1-based; 0 when the problem has no line (an empty directory, an unreadable file). */
  line: number;
  col: number;
  endLine?: number;
  endCol?: number;
  severity: Severity;
  /** Stable machine-readable code; every one is listed below and in docs/diagnostics.md. */
  code: DiagnosticCode;
  message: string;
}

export function compareDiagnostics(a: Diagnostic, b: Diagnostic): number {
  return (
    (a.file < b.file ? -1 : a.file > b.file ? 1 : 0) ||
    a.line - b.line ||
    a.col - b.col ||
    (a.message < b.message ? -1 : a.message > b.message ? 1 : 0)
  );
}

export function formatText(d: Diagnostic): string {
  const where = d.line > 0 ? `${d.file}:${d.line}:${d.col}` : d.file;
  return `${where}: ${d.severity}: ${d.message}`;
}

// GitHub workflow commands: properties and data are escaped as the runner expects
// (https://github.com/actions/toolkit/blob/main/packages/core/src/command.ts).
function escapeData(s: string): string {
  return s.replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
}
function escapeProperty(s: string): string {
  return escapeData(s).replace(/:/g, '%3A').replace(/,/g, '%2C');
}

export function formatGithub(d: Diagnostic): string {
  const props = [`file=${escapeProperty(d.file)}`];
  if (d.line > 0) {
    props.push(`line=${d.line}`, `col=${d.col}`);
    if (d.endLine !== undefined) props.push(`endLine=${d.endLine}`);
    if (d.endCol !== undefined && d.endLine === d.line) props.push(`endColumn=${d.endCol}`);
  }
  props.push(`title=${escapeProperty(`fleetwave ${d.code}`)}`);
  return `::${d.severity} ${props.join(',')}::${escapeData(d.message)}`;
}
