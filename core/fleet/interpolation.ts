// `${agent.id}` and `${agent.labels.NAME}` in config strings: nothing else is ever evaluated.
// `$${` writes a literal `${` (for agents that expand their own variables).

import { labelKeyProblem } from './selector.ts';

export type Reference = { kind: 'id' } | { kind: 'label'; name: string };

export interface Token {
  /** The text as written, e.g. `${agent.labels.region}`; for an unterminated one, up to the next blank. */
  raw: string;
  index: number;
  reference?: Reference;
  problem?: string;
}

const OPEN = /\$\$\{|\$\{/g;
const UNTERMINATED = /\$\{[^\s$]*/y;

export function scan(text: string): Token[] {
  const out: Token[] = [];
  // Where the next `}` and `${` stand; they only move forward, so a scan stays linear.
  let close = -2;
  let reopen = -2;
  for (const m of text.matchAll(OPEN)) {
    if (m[0] === '$${') continue;
    const index = m.index;
    if (close !== -1 && close < index + 2) close = text.indexOf('}', index + 2);
    if (reopen !== -1 && reopen < index + 2) reopen = text.indexOf('${', index + 2);
    // `${agent.id-${agent.labels.x}`: the first one is never closed, the second one is fine.
    if (close < 0 || (reopen >= 0 && reopen < close)) {
      UNTERMINATED.lastIndex = index;
      const raw = UNTERMINATED.exec(text)![0];
      out.push({
        raw,
        index,
        problem: `unterminated interpolation "${raw}": close it with "}" or write "$\${" for a literal "\${"`,
      });
      continue;
    }
    const raw = text.slice(index, close + 1);
    const expr = raw.slice(2, -1).trim();
    if (expr === 'agent.id') {
      out.push({ raw, index, reference: { kind: 'id' } });
    } else if (expr.startsWith('agent.labels.')) {
      const name = expr.slice('agent.labels.'.length);
      const problem = labelKeyProblem(name);
      if (problem) out.push({ raw, index, problem: `in "${raw}": ${problem}` });
      else out.push({ raw, index, reference: { kind: 'label', name } });
    } else {
      out.push({
        raw,
        index,
        problem: `"${raw}" is not allowed: only \${agent.id} and \${agent.labels.NAME} may be interpolated (write "$\${" for a literal "\${")`,
      });
    }
  }
  return out;
}

export function hasInterpolation(text: string): boolean {
  return text.includes('${');
}
