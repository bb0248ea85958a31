// Kubernetes label selectors: validation of their form, and matching against agent labels.

import type { Selector } from './model.ts';

export type Labels = Readonly<Record<string, string>>;

const NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;

/** Why `key` is not a valid label key, or undefined when it is. */
export function labelKeyProblem(key: string): string | undefined {
  const slash = key.indexOf('/');
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (slash >= 0) {
    const prefix = key.slice(0, slash);
    if (prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix)) {
      return `label key prefix "${prefix}" must be a DNS subdomain such as example.com`;
    }
  }
  if (!NAME.test(name)) {
    return `label key "${key}" must be at most 63 characters of letters, digits, '-', '_' and '.', starting and ending with a letter or digit`;
  }
  return undefined;
}

export function labelValueProblem(value: string): string | undefined {
  if (!VALUE.test(value)) {
    return `label value "${value}" must be empty or at most 63 characters of letters, digits, '-', '_' and '.', starting and ending with a letter or digit`;
  }
  return undefined;
}

export interface SelectorProblem {
  path: ReadonlyArray<string | number>;
  at: 'key' | 'value';
  message: string;
}

/** Problems of form, each with the path (relative to the selector) of the node to blame. */
export function selectorProblems(selector: Selector): SelectorProblem[] {
  const out: SelectorProblem[] = [];
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    const kp = labelKeyProblem(key);
    if (kp) out.push({ path: ['matchLabels', key], at: 'key', message: kp });
    const vp = labelValueProblem(value);
    if (vp) out.push({ path: ['matchLabels', key], at: 'value', message: vp });
  }
  (selector.matchExpressions ?? []).forEach((req, i) => {
    const kp = labelKeyProblem(req.key);
    if (kp) out.push({ path: ['matchExpressions', i, 'key'], at: 'value', message: kp });
    const hasValues = req.values !== undefined && req.values.length > 0;
    if ((req.operator === 'In' || req.operator === 'NotIn') && !hasValues) {
      // Blame the empty list when there is one, else the operator that wants it.
      out.push({
        path: ['matchExpressions', i, req.values === undefined ? 'operator' : 'values'],
        at: 'value',
        message: `operator ${req.operator} needs a non-empty "values" list`,
      });
    }
    if (
      (req.operator === 'Exists' || req.operator === 'DoesNotExist') &&
      req.values !== undefined
    ) {
      out.push({
        path: ['matchExpressions', i, 'values'],
        at: 'key',
        message: `operator ${req.operator} takes no "values"`,
      });
    }
    (req.values ?? []).forEach((v, j) => {
      const vp = labelValueProblem(v);
      if (vp) out.push({ path: ['matchExpressions', i, 'values', j], at: 'value', message: vp });
    });
  });
  return out;
}

/** An absent selector selects every agent, as an empty one does. */
export function matches(selector: Selector | undefined, labels: Labels): boolean {
  if (!selector) return true;
  const ml = selector.matchLabels;
  if (ml) {
    for (const key in ml) {
      if (labels[key] !== ml[key]) return false;
    }
  }
  for (const req of selector.matchExpressions ?? []) {
    const has = Object.prototype.hasOwnProperty.call(labels, req.key);
    const value = has ? labels[req.key] : undefined;
    switch (req.operator) {
      case 'In':
        if (!has || !req.values!.includes(value!)) return false;
        break;
      case 'NotIn':
        if (has && req.values!.includes(value!)) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
    }
  }
  return true;
}

/** The label keys a selector looks at: two agents equal on these keys match alike. */
export function selectorKeys(selector: Selector | undefined): string[] {
  if (!selector) return [];
  return [
    ...Object.keys(selector.matchLabels ?? {}),
    ...(selector.matchExpressions ?? []).map((r) => r.key),
  ];
}

/**
 * A selector written as a string, as kubectl's `-l` takes it: `k=v`, `k==v`, `k!=v`,
 * `k in (a,b)`, `k notin (a,b)`, `k` (exists), `!k` (does not exist), joined by commas.
 * Throws an Error whose message says what is wrong; every key and value is checked.
 */
export function parseSelector(text: string): Selector {
  const matchLabels: Record<string, string> = {};
  const matchExpressions: NonNullable<Selector['matchExpressions']> = [];
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === ',' && depth === 0) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
    if (depth < 0 || depth > 1) throw new Error(`unbalanced parentheses in selector "${text}"`);
  }
  if (depth !== 0) throw new Error(`unbalanced parentheses in selector "${text}"`);
  parts.push(text.slice(start));
  const key = (k: string): string => {
    const problem = labelKeyProblem(k);
    if (problem) throw new Error(problem);
    return k;
  };
  const value = (v: string): string => {
    const problem = labelValueProblem(v);
    if (problem) throw new Error(problem);
    return v;
  };
  for (const raw of parts) {
    const part = raw.trim();
    if (part === '') throw new Error(`empty requirement in selector "${text}"`);
    let m: RegExpMatchArray | null;
    if ((m = part.match(/^(\S+?)\s+(in|notin)\s*\((.*)\)$/))) {
      const values = m[3]!.split(',').map((v) => value(v.trim()));
      matchExpressions.push({ key: key(m[1]!), operator: m[2] === 'in' ? 'In' : 'NotIn', values });
    } else if ((m = part.match(/^([^=!\s]+)\s*!=\s*(\S*)$/))) {
      matchExpressions.push({ key: key(m[1]!), operator: 'NotIn', values: [value(m[2]!)] });
    } else if ((m = part.match(/^([^=!\s]+)\s*==?\s*(\S*)$/))) {
      const k = key(m[1]!);
      if (k in matchLabels && matchLabels[k] !== m[2]) {
        matchExpressions.push({ key: k, operator: 'In', values: [value(m[2]!)] });
      } else matchLabels[k] = value(m[2]!);
    } else if ((m = part.match(/^!\s*(\S+)$/))) {
      matchExpressions.push({ key: key(m[1]!), operator: 'DoesNotExist' });
    } else if (/^\S+$/.test(part)) {
      matchExpressions.push({ key: key(part), operator: 'Exists' });
    } else {
      throw new Error(
        `"${part}" is not a requirement: write k=v, k!=v, k in (a,b), k notin (a,b), k or !k`,
      );
    }
  }
  const selector: Selector = {};
  if (Object.keys(matchLabels).length > 0) selector.matchLabels = matchLabels;
  if (matchExpressions.length > 0) selector.matchExpressions = matchExpressions;
  return selector;
}
