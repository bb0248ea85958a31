// `${agent.id}` and `${agent.labels.NAME}` in config strings: nothing else is ever evaluated.
// `$${` writes a literal `${` (for agents that expand their own variables).

import { labelKeyProblem } from './selector.ts';

export type Reference = { kind: 'id' } | { kind: 'label'; name: string };

export interface Token {
  /** The text as written, e.g. `${agent.labels.region}`. */
  raw: string;
  index: number;
  reference?: Reference;
  problem?: string;
}

const TOKEN = /\$\$\{|\$\{([^}]*)\}?/g;

export function scan(text: string): Token[] {
  const out: Token[] = [];
  for (const m of text.matchAll(TOKEN)) {
    if (m[0] === '$${') continue;
    const raw = m[0];
    const index = m.index;
    if (!raw.endsWith('}')) {
      out.push({
        raw,
        index,
        problem: `unterminated interpolation "${raw}": close it with "}" or write "$\${" for a literal "\${"`,
      });
      continue;
    }
    const expr = (m[1] ?? '').trim();
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
