// A plan for people: markdown for the pull-request comment (tables and a mermaid diagram of
// the waves, readable by someone who has never seen fleetwave) and plain text for terminals.

import type { ValueChange } from './diff.ts';
import { labelKey, type GroupPlan, type Plan } from './plan.ts';
import { describeGates, describeSelector, mermaidWaves } from './policy.ts';
import { formatPath } from '../target/render.ts';

const short = (sha: string) => sha.slice(0, 7);
const n = (x: number) => x.toLocaleString('en-US');

function value(v: unknown): string {
  if (v === undefined) return '(unset)';
  const text = JSON.stringify(v);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

function code(text: string): string {
  const t = cell(text);
  return t.includes('`') ? `\`\` ${t} \`\`` : `\`${t}\``;
}

function side(s: GroupPlan['before']): string {
  return 'error' in s ? `error: ${s.error}` : s.version;
}

function changeRow(c: ValueChange): string {
  return `| ${code(formatPath(c.path))} | ${c.kind === 'added' ? '_(unset)_' : code(value(c.before))} | ${c.kind === 'removed' ? '_(removed)_' : code(value(c.after))} |`;
}

function who(g: GroupPlan): string {
  const common = labelKey(g.labels);
  const spread = g.labelSets > 1 ? ` (${g.labelSets} label combinations)` : '';
  return common ? `with ${common}${spread}` : `with various labels${spread}`;
}

export const COMMENT_MARKER = '<!-- fleetwave-plan -->';

function headline(p: Plan): string {
  const version =
    p.version.before === p.version.after
      ? `version stays ${p.version.before}`
      : `version ${p.version.before} → ${p.version.after}`;
  if (p.groups.length === 0) return `No agent gets a new target (${version}).`;
  if (p.agentSource === 'inventory') {
    return `**${n(p.agents.changed)} of ${n(p.agents.total)} agents** get a new target (${version}).`;
  }
  const one = p.groups.length === 1;
  return `**${p.groups.length} group${one ? '' : 's'} of agents** get${one ? 's' : ''} a new target (${version}); pass an inventory to count agents.`;
}

export function planMarkdown(p: Plan): string {
  const out: string[] = [
    COMMENT_MARKER,
    `## fleetwave plan: \`${short(p.base)}\` → \`${short(p.head)}\``,
    '',
    headline(p),
    '',
  ];
  if (p.agents.errors.length > 0) {
    out.push(
      `> [!WARNING]`,
      `> ${n(p.agents.errors.length)} agent${p.agents.errors.length === 1 ? '' : 's'} cannot be rendered after this change and would keep their current target:`,
      ...p.agents.errors.slice(0, 10).map((e) => `> - \`${cell(e.id)}\`: ${cell(e.message)}`),
      ...(p.agents.errors.length > 10 ? [`> - … and ${n(p.agents.errors.length - 10)} more`] : []),
      '',
    );
  }

  out.push('### How it rolls out', '');
  out.push(
    'The change goes to one wave at a time. It moves on when the wave has baked and its gates pass; if a gate fails, every agent goes back to the current version and the commit is reverted.',
    '',
  );
  const counts =
    p.agentSource === 'inventory'
      ? new Map(p.waves.map((w) => [w.wave.name, w.agents ?? 0]))
      : undefined;
  out.push(
    '```mermaid',
    mermaidWaves(
      p.waves.map((w) => w.wave),
      counts,
    ),
    '```',
    '',
  );
  const withCounts = p.agentSource === 'inventory';
  out.push(
    `| # | wave | agents selected | bake | gates${withCounts ? ' | agents | new target' : ''} |`,
    `| --- | --- | --- | --- | ---${withCounts ? ' | ---: | ---:' : ''} |`,
  );
  for (const w of p.waves) {
    const who = `${w.wave.percent}% of ${w.wave.selector ? describeSelector(w.wave.selector) : 'the rest'}`;
    const gates = describeGates(w.wave.gates);
    const approval = w.wave.approval === 'manual' ? ' · manual approval' : '';
    out.push(
      `| ${w.index} | **${cell(w.wave.name)}** | ${cell(who)} | ${w.wave.bake} | ${cell(gates.join('; ') || 'bake only')}${approval}${withCounts ? ` | ${n(w.agents ?? 0)} | ${n(w.changed ?? 0)}` : ''} |`,
    );
  }
  out.push('');
  if (p.policyChanged) {
    out.push(
      '> [!NOTE]',
      '> This change edits the rollout policy (waves or gates). It rolls out under the current policy shown above; the new one applies once this change is stable.',
      '',
    );
  }

  if (p.groups.length > 0) {
    out.push('### What changes, by group of agents', '');
    p.groups.forEach((g, i) => {
      const count =
        p.agentSource === 'inventory'
          ? `${n(g.agents)} agent${g.agents === 1 ? '' : 's'}`
          : 'agents';
      const title = `${count} ${who(g)} (waves: ${g.waves.join(', ') || 'none'})`;
      const body: string[] = ['| | before | after |', '| --- | --- | --- |'];
      body.push(`| version | ${cell(side(g.before))} | ${cell(side(g.after))} |`);
      if (
        g.artifactChanged &&
        !('error' in g.before) &&
        !('error' in g.after) &&
        g.before.version === g.after.version
      ) {
        body.push('| artifact | | changed (url, sha256 or signature) |');
      }
      for (const c of g.changes.slice(0, 50)) body.push(changeRow(c));
      if (g.changes.length > 50) body.push(`| … | ${g.changes.length - 50} more changes | |`);
      if (i < 3) out.push(`#### ${cell(title)}`, '', ...body, '');
      else
        out.push(
          '<details>',
          `<summary>${cell(title)}</summary>`,
          '',
          ...body,
          '',
          '</details>',
          '',
        );
    });
    if (p.unchangedGroups > 0) {
      out.push(
        `${p.unchangedGroups} other group${p.unchangedGroups === 1 ? '' : 's'} of agents receive exactly what they have now.`,
        '',
      );
    }
  }

  if (p.files.length > 0) {
    out.push('### Files', '', '| file | change | kinds |', '| --- | --- | --- |');
    for (const f of p.files)
      out.push(`| ${code(f.file)} | ${f.change} | ${f.kinds.join(', ') || '-'} |`);
    out.push('');
  }
  return out.join('\n');
}

export function planText(p: Plan): string {
  const out: string[] = [
    `plan ${short(p.base)}..${short(p.head)}: ${headline(p).replace(/\*\*/g, '')}`,
  ];
  for (const f of p.files)
    out.push(`  ${f.change.padEnd(8)} ${f.file} (${f.kinds.join(', ') || '-'})`);
  out.push('waves (current policy):');
  for (const w of p.waves) {
    const counts =
      w.agents !== undefined ? `: ${n(w.changed ?? 0)} of ${n(w.agents)} agents change` : '';
    out.push(
      `  ${w.index}. ${w.wave.name}, ${w.wave.percent}% of ${describeSelector(w.wave.selector)}, bake ${w.wave.bake}${counts}`,
    );
  }
  if (p.policyChanged)
    out.push('note: this change edits the rollout policy; it applies once the change is stable');
  for (const g of p.groups) {
    const count = p.agentSource === 'inventory' ? `${n(g.agents)} agents` : 'agents';
    out.push(`${count} ${who(g)}: ${side(g.before)} -> ${side(g.after)}`);
    for (const c of g.changes)
      out.push(
        `  ${c.kind.padEnd(8)} ${formatPath(c.path)}: ${value(c.before)} -> ${value(c.after)}`,
      );
  }
  for (const e of p.agents.errors) out.push(`error: agent ${e.id}: ${e.message}`);
  return out.join('\n') + '\n';
}
