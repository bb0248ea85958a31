// Reads a fleet from a git revision without a work tree: the reconciler and `plan` read
// commits, never checkouts. Symlinks are followed only when they stay inside the fleet.

import { posix } from 'node:path';
import type { Diagnostic } from '../core/diagnostics.ts';
import { FleetwaveError } from '../core/errors.ts';
import {
  DEFAULT_LIMITS,
  isFleetFileName,
  type FleetSource,
  type Limits,
  type SourceFile,
} from '../core/fleet/source.ts';
import type { GitRepository, TreeEntry } from '../git/repository.ts';
import { formatBytes } from './directory.ts';

export interface RevisionSource extends FleetSource {
  commit: string;
}

function problem(file: string, code: string, message: string): Diagnostic {
  return { file, line: 0, col: 0, severity: 'error', code, message };
}

/** `dir` is the fleet's path inside the repository, e.g. `fleet`. */
export async function readFleetAtRevision(
  repo: GitRepository,
  rev: string,
  dir = 'fleet',
  limits: Limits = DEFAULT_LIMITS,
): Promise<RevisionSource> {
  const commit = await repo.resolveCommit(rev);
  const root = posix.normalize(dir).replace(/\/+$/, '');
  if (root.startsWith('..') || posix.isAbsolute(root)) {
    throw new FleetwaveError('USAGE', `fleet path "${dir}" must be inside the repository`);
  }
  const entries = await repo.listTree(commit, root === '.' ? '.' : root);
  const prefix = root === '.' ? '' : `${root}/`;
  const byPath = new Map<string, TreeEntry>(entries.map((e) => [e.path, e]));
  if (entries.length === 0) {
    throw new FleetwaveError(
      'FLEET_NOT_FOUND',
      `${root} does not exist at ${rev} (${commit.slice(0, 12)})`,
    );
  }

  const diagnostics: Diagnostic[] = [];
  const wanted: Array<{ entry: TreeEntry; blob: TreeEntry }> = [];
  let total = 0;
  for (const entry of entries) {
    const name = entry.path.slice(prefix.length);
    if (
      entry.type !== 'blob' ||
      !isFleetFileName(entry.path) ||
      name.split('/').some((s) => s.startsWith('.'))
    )
      continue;
    let blob = entry;
    if (entry.mode === '120000') {
      // A symlink's blob holds its target; resolve it inside the tree, never on disk.
      const [link] = (await repo.readBlobs([entry.oid])).values();
      const target = posix.normalize(posix.join(posix.dirname(entry.path), link!.toString('utf8')));
      const resolved = byPath.get(target);
      if (!target.startsWith(prefix) || !resolved || resolved.mode === '120000') {
        diagnostics.push(
          problem(
            entry.path,
            'symlink',
            'symlink points outside the fleet directory; fleet files must live inside it',
          ),
        );
        continue;
      }
      blob = resolved;
    }
    if (wanted.length >= limits.maxFiles) {
      diagnostics.push(problem(root, 'too-many-files', `more than ${limits.maxFiles} fleet files`));
      break;
    }
    if (blob.size > limits.maxFileBytes) {
      diagnostics.push(
        problem(
          entry.path,
          'too-large',
          `file is ${formatBytes(blob.size)}; a fleet file may be at most ${formatBytes(limits.maxFileBytes)}`,
        ),
      );
      continue;
    }
    total += blob.size;
    if (total > limits.maxTotalBytes) {
      diagnostics.push(
        problem(
          root,
          'too-large',
          `the fleet is larger than ${formatBytes(limits.maxTotalBytes)} in total`,
        ),
      );
      break;
    }
    wanted.push({ entry, blob });
  }
  const blobs = await repo.readBlobs([...new Set(wanted.map((w) => w.blob.oid))]);
  const files: SourceFile[] = wanted.map(({ entry, blob }) => ({
    name: entry.path.slice(prefix.length),
    display: entry.path,
    bytes: blobs.get(blob.oid)!,
  }));
  return { root, files, diagnostics, commit };
}
