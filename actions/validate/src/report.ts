// What the validate action says, as markdown: the job summary (every problem, the plan) and
// the sticky pull-request comment (the plan, or the errors to fix). Pure: data in, text out.

import { formatText, type Diagnostic } from '../../../core/diagnostics.ts';
import { COMMENT_MARKER, planMarkdown } from '../../../core/plan/format.ts';
import type { ReconcilerStatus } from '../../shared/src/reconciler.ts';
import type { PlanOutcome } from './plan.ts';

export interface Report {
  path: string;
  diagnostics: readonly Diagnostic[];
  errorCount: number;
  plan?: PlanOutcome;
  live?: ReconcilerStatus;
  /** Notes for people: an inventory with errors, a reconciler that could not be reached. */
  notes: string[];
  /** Where a file's line is shown on GitHub, or undefined outside a repository. */
  link?: (file: string, line: number) => string;
}

/** How many problems the comment lists one by one; the summary lists them all. */
export const COMMENT_PROBLEMS = 50;

function plural(n: number, word: string): string {
  return `${n.toLocaleString('en-US')} ${word}${n === 1 ? '' : 's'}`;
}

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}

function where(d: Diagnostic, link: Report['link']): string {
  const text = d.line > 0 ? `${d.file}:${d.line}:${d.col}` : d.file;
  return link ? `[\`${cell(text)}\`](${link(d.file, d.line)})` : `\`${cell(text)}\``;
}

function problemTable(diagnostics: readonly Diagnostic[], link: Report['link']): string[] {
  return [
    '| where | severity | problem |',
    '| --- | --- | --- |',
    ...diagnostics.map((d) => `| ${where(d, link)} | ${d.severity} | ${cell(d.message)} |`),
  ];
}

function headline(r: Report): string {
  const warnings = r.diagnostics.length - r.errorCount;
  if (r.errorCount > 0) {
    return `## fleetwave: \`${r.path}\` is invalid (${plural(r.errorCount, 'error')}${warnings > 0 ? `, ${plural(warnings, 'warning')}` : ''})`;
  }
  return `## fleetwave: \`${r.path}\` is valid${warnings > 0 ? ` (${plural(warnings, 'warning')})` : ''}`;
}

function liveSection(live: ReconcilerStatus): string[] {
  const out = ['### The fleet now (from the reconciler)', ''];
  if (!live.ready || live.waves.length === 0) {
    return [...out, 'The reconciler is not serving a rollout yet.', ''];
  }
  out.push(
    `Stable \`${(live.stable ?? '').slice(0, 7)}\`${live.candidate ? `, candidate \`${live.candidate.revision.slice(0, 7)}\` on wave ${live.candidate.waveIndex}` : ', nothing rolling out'}.`,
    '',
    '| wave | agents connected | on candidate | on stable | failed |',
    '| --- | ---: | ---: | ---: | ---: |',
  );
  for (const w of live.waves) {
    out.push(
      `| ${cell(w.name)} | ${w.agents} | ${w.running.candidate} | ${w.running.stable} | ${w.health.failed} |`,
    );
  }
  out.push('');
  return out;
}

function planSection(r: Report): string[] {
  if (!r.plan) return [];
  if (!r.plan.ok) return ['### Plan', '', `No plan: ${r.plan.reason}.`, ''];
  // planMarkdown starts with the marker; the report carries it once, at the top.
  return [planMarkdown(r.plan.plan).replace(`${COMMENT_MARKER}\n`, ''), ''];
}

function notesSection(r: Report): string[] {
  return r.notes.length > 0 ? [...r.notes.map((n) => `> [!WARNING]\n> ${cell(n)}\n`)] : [];
}

/** The job summary: the headline, every problem, the plan, the live fleet. */
export function summaryMarkdown(r: Report): string {
  const out = [headline(r), ''];
  if (r.diagnostics.length > 0) out.push(...problemTable(r.diagnostics, r.link), '');
  out.push(...notesSection(r), ...planSection(r));
  if (r.live) out.push(...liveSection(r.live));
  return out.join('\n');
}

/** The sticky comment: always starts with COMMENT_MARKER so the next run finds it. */
export function commentMarkdown(r: Report): string {
  const out = [COMMENT_MARKER];
  if (r.errorCount > 0) {
    const errors = r.diagnostics.filter((d) => d.severity === 'error');
    out.push(
      headline(r),
      '',
      'This change cannot roll out until these are fixed:',
      '',
      ...problemTable(errors.slice(0, COMMENT_PROBLEMS), r.link),
      '',
    );
    if (errors.length > COMMENT_PROBLEMS) {
      out.push(
        `… and ${plural(errors.length - COMMENT_PROBLEMS, 'more error')}: every one is in the job summary and annotated on its file.`,
        '',
      );
    }
    out.push(...notesSection(r));
    return out.join('\n');
  }
  if (r.plan?.ok) out.push(...planSection(r));
  else out.push(headline(r), '', ...planSection(r));
  out.push(...notesSection(r));
  if (r.live) out.push(...liveSection(r.live));
  const warnings = r.diagnostics.filter((d) => d.severity === 'warning');
  if (warnings.length > 0) {
    out.push(
      '<details>',
      `<summary>${plural(warnings.length, 'warning')}</summary>`,
      '',
      ...warnings.map((d) => `- ${cell(formatText(d))}`),
      '',
      '</details>',
      '',
    );
  }
  return out.join('\n');
}
