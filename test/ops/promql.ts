// What the operations pack queries: every PromQL expression of the Grafana dashboard and the
// alert rules, and the metric names those expressions read (a small PromQL scanner: enough
// for names, not a parser).

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const DASHBOARD = `${ROOT}deploy/grafana/dashboards/fleetwave.json`;
export const RULES = `${ROOT}deploy/prometheus/rules/fleetwave.rules.yaml`;
export const RULE_TESTS = `${ROOT}deploy/prometheus/tests`;
export const RUNBOOK = `${ROOT}docs/operations/alerts.md`;

export interface Query {
  /** Where it is: a panel title and refId, a template variable, or an alert. */
  where: string;
  expr: string;
}

interface Panel {
  title: string;
  targets?: Array<{ refId: string; expr: string }>;
  panels?: Panel[];
}

export interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export function dashboardQueries(): Query[] {
  const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as {
    panels: Panel[];
    templating: { list: Array<{ name: string; type: string; query: unknown }> };
  };
  const out: Query[] = [];
  const walk = (panels: Panel[]): void => {
    for (const p of panels) {
      for (const t of p.targets ?? []) out.push({ where: `${p.title} (${t.refId})`, expr: t.expr });
      walk(p.panels ?? []);
    }
  };
  walk(dashboard.panels);
  for (const v of dashboard.templating.list) {
    if (v.type !== 'query') continue;
    const q = (v.query as { query: string }).query;
    // label_values(SELECTOR, LABEL) is Grafana's, not PromQL: its selector is.
    const m = /^label_values\((.*),\s*\w+\)$/.exec(q);
    out.push({ where: `variable $${v.name}`, expr: m ? m[1]! : q });
  }
  return out;
}

export function ruleGroups(): Array<{ name: string; rules: Rule[] }> {
  return (parse(readFileSync(RULES, 'utf8')) as { groups: Array<{ name: string; rules: Rule[] }> })
    .groups;
}

export function ruleQueries(): Query[] {
  return ruleGroups().flatMap((g) =>
    g.rules.map((r) => ({ where: `alert ${r.alert ?? r.record}`, expr: r.expr })),
  );
}

/** Grafana's variables replaced by values Prometheus accepts: every job and wave, 1m steps. */
export function concrete(expr: string): string {
  return expr
    .replaceAll('$__rate_interval', '1m')
    .replaceAll('$__interval', '15s')
    .replaceAll('$__range', '5m')
    .replace(/\$\{?(job|wave)\}?/g, '.*');
}

const KEYWORDS = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'bool',
  'and',
  'or',
  'unless',
  'offset',
  'inf',
  'nan',
  'atan2',
]);

/**
 * The metric names an expression reads: identifiers that are not functions, aggregations or
 * keywords, outside strings, label matchers, ranges and label lists.
 */
export function metricNames(expr: string): string[] {
  const text = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, ' ')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names = new Set<string>();
  for (const m of text.matchAll(/(?<![\w.$:])([a-zA-Z_:][\w:]*)(\s*\()?/g)) {
    const [, name, call] = m;
    if (call !== undefined || KEYWORDS.has(name!.toLowerCase())) continue;
    names.add(name!);
  }
  return [...names].sort();
}

/** Metric families of a Prometheus exposition, by name, with their type. */
export function families(exposition: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)) out.set(m[1]!, m[2]!);
  return out;
}

/** The family a sample name belongs to: histogram and summary series carry suffixes. */
export function familyOf(name: string, served: Map<string, string>): string | undefined {
  if (served.has(name)) return name;
  const m = /^(.*)_(bucket|sum|count)$/.exec(name);
  if (!m) return undefined;
  const type = served.get(m[1]!);
  if (type === 'histogram' || (type === 'summary' && m[2] !== 'bucket')) return m[1];
  return undefined;
}
