// Which fleet files a change adds, modifies or removes, and which kinds of document they hold.
// Computed from the two revisions' sources, so it needs no git diff.

import type { SourceFile } from '../fleet/source.ts';
import type { Kind } from '../fleet/model.ts';

export interface FileChange {
  file: string;
  change: 'added' | 'modified' | 'removed';
  kinds: Kind[];
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

export function changedFiles(
  base: readonly SourceFile[],
  head: readonly SourceFile[],
  kindsOf: (file: string, side: 'base' | 'head') => Kind[],
): FileChange[] {
  const before = new Map(base.map((f) => [f.display, f]));
  const after = new Map(head.map((f) => [f.display, f]));
  const out: FileChange[] = [];
  for (const [file, f] of after) {
    const old = before.get(file);
    if (!old) out.push({ file, change: 'added', kinds: kindsOf(file, 'head') });
    else if (!sameBytes(old.bytes, f.bytes)) {
      const kinds = [...new Set([...kindsOf(file, 'base'), ...kindsOf(file, 'head')])];
      out.push({ file, change: 'modified', kinds });
    }
  }
  for (const file of before.keys()) {
    if (!after.has(file)) out.push({ file, change: 'removed', kinds: kindsOf(file, 'base') });
  }
  return out.sort((a, b) => (a.file < b.file ? -1 : 1));
}
