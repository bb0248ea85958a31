// A structural diff of two rendered configs: the paths whose values differ, with both values.
// Mappings are compared key by key; lists and scalars are compared whole, as they merge.

export type ConfigPath = Array<string | number>;

export interface ValueChange {
  path: ConfigPath;
  kind: 'added' | 'removed' | 'changed';
  before?: unknown;
  after?: unknown;
}

function isMapping(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Deep equality of plain JSON values (key order does not matter). */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) {
    return Array.isArray(b) && a.length === b.length && a.every((v, i) => jsonEqual(v, b[i]));
  }
  if (isMapping(a) && isMapping(b)) {
    const ka = Object.keys(a);
    if (ka.length !== Object.keys(b).length) return false;
    return ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && jsonEqual(a[k], b[k]));
  }
  return false;
}

export function diffValues(before: unknown, after: unknown, base: ConfigPath = []): ValueChange[] {
  const out: ValueChange[] = [];
  const stack: Array<[unknown, unknown, ConfigPath]> = [[before, after, base]];
  while (stack.length > 0) {
    const [a, b, path] = stack.pop()!;
    // A secretRef is one value: show it whole rather than as provider/key leaves.
    const leaf = (v: unknown) => !isMapping(v) || 'secretRef' in v;
    if (!leaf(a) && !leaf(b)) {
      const ma = a as Record<string, unknown>;
      const mb = b as Record<string, unknown>;
      const keys = [...new Set([...Object.keys(ma), ...Object.keys(mb)])].sort().reverse();
      for (const k of keys) {
        const inA = Object.prototype.hasOwnProperty.call(ma, k);
        const inB = Object.prototype.hasOwnProperty.call(mb, k);
        if (inA && !inB) out.push({ path: [...path, k], kind: 'removed', before: ma[k] });
        else if (!inA && inB) out.push({ path: [...path, k], kind: 'added', after: mb[k] });
        else stack.push([ma[k], mb[k], [...path, k]]);
      }
    } else if (!jsonEqual(a, b)) {
      out.push({ path, kind: 'changed', before: a, after: b });
    }
  }
  return out.sort((x, y) => comparePaths(x.path, y.path));
}

function comparePaths(a: ConfigPath, b: ConfigPath): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const x = String(a[i]);
    const y = String(b[i]);
    if (x !== y) return x < y ? -1 : 1;
  }
  return a.length - b.length;
}
