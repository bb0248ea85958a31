// The rollout policy in words: how a wave selects agents and what its gates demand.
// Shared by the plan (pull-request comment) and, later, the status page.

import type { Gates, Selector, Wave } from '../fleet/model.ts';

const pct = (ratio: number): string => `${+(ratio * 100).toFixed(2)}%`;

export function describeSelector(selector: Selector | undefined): string {
  if (!selector) return 'everyone';
  const parts: string[] = [];
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) parts.push(`${k}=${v}`);
  for (const r of selector.matchExpressions ?? []) {
    const values = (r.values ?? []).join(', ');
    if (r.operator === 'In') parts.push(`${r.key} in (${values})`);
    else if (r.operator === 'NotIn') parts.push(`${r.key} not in (${values})`);
    else if (r.operator === 'Exists') parts.push(`has ${r.key}`);
    else parts.push(`no ${r.key}`);
  }
  return parts.length > 0 ? parts.join(', ') : 'everyone';
}

/** One short phrase per gate, in the order they are evaluated. */
export function describeGates(gates: Gates | undefined): string[] {
  if (!gates) return [];
  const out: string[] = [];
  if (gates.minAgents !== undefined) out.push(`at least ${gates.minAgents} agents`);
  if (gates.minAppliedRatio !== undefined) {
    out.push(
      `${pct(gates.minAppliedRatio)} applied${gates.applyDeadline ? ` within ${gates.applyDeadline}` : ''}`,
    );
  }
  if (gates.maxFailedRatio !== undefined) out.push(`failed ≤ ${pct(gates.maxFailedRatio)}`);
  if (gates.maxErrorRate !== undefined) out.push(`error rate ≤ ${pct(gates.maxErrorRate)}`);
  if (gates.maxSilentRatio !== undefined) out.push(`silent ≤ ${pct(gates.maxSilentRatio)}`);
  if (gates.compareToStable) {
    const c = gates.compareToStable;
    out.push(`${c.metric} no worse than stable + ${pct(c.tolerance)}`);
  }
  for (const p of gates.prometheus ?? []) {
    const bounds = [
      p.min !== undefined ? `≥ ${p.min}` : undefined,
      p.max !== undefined ? `≤ ${p.max}` : undefined,
    ]
      .filter(Boolean)
      .join(' and ');
    out.push(`${p.name} ${bounds}`);
  }
  if (gates.failAfter) out.push(`fails if undecided after ${gates.failAfter}`);
  return out;
}

export function describeWave(wave: Wave): string {
  const who = wave.selector
    ? `${wave.percent}% of ${describeSelector(wave.selector)}`
    : `${wave.percent}% of the rest`;
  return `${who}, bake ${wave.bake}${wave.approval === 'manual' ? ', manual approval' : ''}`;
}

function mermaidLabel(text: string): string {
  return text.replace(/"/g, '#quot;').replace(/</g, '#lt;').replace(/>/g, '#gt;');
}

/** A left-to-right flowchart of the waves a change passes through, for GitHub's mermaid. */
export function mermaidWaves(waves: readonly Wave[], counts?: ReadonlyMap<string, number>): string {
  const lines = ['flowchart LR', '  merge(["merged on main"])'];
  let prev = 'merge';
  waves.forEach((w, i) => {
    const id = `w${i}`;
    const n = counts?.get(w.name);
    const size = n === undefined ? '' : `<br/>${n} agents`;
    lines.push(`  ${id}["${mermaidLabel(w.name)}<br/>${mermaidLabel(describeWave(w))}${size}"]`);
    const edge = i === 0 ? '' : waves[i - 1]!.approval === 'manual' ? '|approval|' : '|gates pass|';
    lines.push(`  ${prev} -->${edge} ${id}`);
    prev = id;
  });
  lines.push('  stable(["stable"])');
  const last = waves[waves.length - 1];
  lines.push(`  ${prev} -->${last?.approval === 'manual' ? '|approval|' : '|gates pass|'} stable`);
  return lines.join('\n');
}
