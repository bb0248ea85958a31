// A diagnostic is one mistake in a fleet, located at the node that causes it.
// Every producer (YAML syntax, schema, semantic checks, file limits) emits this one shape;
// the CLI, the GitHub Action and the reconciler's status only format it.

export type Severity = 'error' | 'warning';

export interface Diagnostic {
  /** Path of the file, relative to the fleet root's parent as given by the source. */
  file: string;
  /** 1-based; 0 when the problem has no line (an empty directory, an unreadable file). */
  line: number;
  col: number;
  endLine?: number;
  endCol?: number;
  severity: Severity;
  /** Stable machine-readable code, e.g. `unknown-key`, `yaml-syntax`. Documented in docs/diagnostics.md. */
  code: string;
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
