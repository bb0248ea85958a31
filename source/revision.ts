// Reads a fleet from a git revision without a work tree: the reconciler and `plan` read
// commits, never checkouts. The commit's tree is walked like readFleetDirectory walks a
// directory (same order, same symlink rules), so a commit and its checkout read alike; sizes
// come from the tree, so a blob that is too large is refused without reading it.

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
import { fileProblem, tooLarge, totalTooLarge } from './directory.ts';

export interface RevisionSource extends FleetSource {
  /** The full commit id `rev` resolved to. */
  commit: string;
}

const SYMLINK_MODE = '120000';
/** Symlinks followed while resolving one path (Linux's MAXSYMLINKS). */
const MAX_HOPS = 40;
/** A symlink's blob holds its target path: anything longer than PATH_MAX is not one. */
const MAX_LINK_BYTES = 4096;

type Resolution =
  { kind: 'file' | 'dir' | 'other'; path: string } | { kind: 'outside' | 'missing' | 'loop' };

/** `dir` is the fleet's path inside the repository, e.g. `fleet`. */
export async function readFleetAtRevision(
  repo: GitRepository,
  rev: string,
  dir = 'fleet',
  limits: Limits = DEFAULT_LIMITS,
): Promise<RevisionSource> {
  const commit = await repo.resolveCommit(rev);
  const at = `${rev} (${commit.slice(0, 12)})`;
  const root = posix.normalize(dir).replace(/\/+$/, '') || '.';
  if (posix.isAbsolute(dir) || root === '..' || root.startsWith('../')) {
    throw new FleetwaveError('USAGE', `fleet path "${dir}" must be inside the repository`);
  }
  const entries = await repo.listTree(commit, root);
  if (entries.length === 0) {
    throw new FleetwaveError('FLEET_NOT_FOUND', `${root} does not exist at ${at}`);
  }
  if (root !== '.' && entries.some((e) => e.path === root)) {
    throw new FleetwaveError(
      'FLEET_NOT_FOUND',
      `${root} is not a directory at ${at}; name the fleet directory itself`,
    );
  }

  // The tree below the root, as directories of names.
  const prefix = root === '.' ? '' : `${root}/`;
  const rootPath = root === '.' ? '' : root;
  const children = new Map<string, Set<string>>([[rootPath, new Set()]]);
  const blobs = new Map<string, TreeEntry>();
  const links = new Map<string, TreeEntry>();
  for (const entry of entries) {
    if (entry.type === 'blob') (entry.mode === SYMLINK_MODE ? links : blobs).set(entry.path, entry);
    const parts = entry.path.slice(prefix.length).split('/');
    let parent = rootPath;
    for (const part of parts) {
      const path = parent === '' ? part : `${parent}/${part}`;
      children.get(parent)!.add(part);
      if (path !== entry.path && !children.has(path)) children.set(path, new Set());
      parent = path;
    }
  }
  const targets = await linkTargets(repo, [...links.values()]);

  const rootParts = rootPath === '' ? [] : rootPath.split('/');
  function resolveLink(path: string): Resolution {
    const resolved = [...rootParts];
    let pending = path.slice(prefix.length).split('/');
    let hops = 0;
    while (pending.length > 0) {
      const part = pending.shift()!;
      if (part === '' || part === '.') continue;
      if (part === '..') {
        // Leaving the fleet, even on the way back in, is leaving: what lies outside is unknown.
        if (resolved.length <= rootParts.length) return { kind: 'outside' };
        resolved.pop();
        continue;
      }
      resolved.push(part);
      const link = links.get(resolved.join('/'));
      if (link === undefined) continue;
      if (++hops > MAX_HOPS) return { kind: 'loop' };
      const target = targets.get(link.oid);
      if (target === undefined || target.startsWith('/')) return { kind: 'outside' };
      resolved.pop();
      pending = [...target.split('/'), ...pending];
    }
    const real = resolved.join('/');
    if (blobs.has(real)) return { kind: 'file', path: real };
    if (children.has(real)) return { kind: 'dir', path: real };
    return entries.some((e) => e.path === real)
      ? { kind: 'other', path: real }
      : { kind: 'missing' };
  }

  const diagnostics: Diagnostic[] = [];
  const wanted: Array<{ name: string; display: string; oid: string }> = [];
  let total = 0;
  const visited = new Set<string>([rootPath]);
  const queue: Array<{ real: string; name: string }> = [{ real: rootPath, name: '' }];
  walk: for (let next = 0; next < queue.length; next++) {
    const { real: dirReal, name: dirName } = queue[next]!;
    const names = [...(children.get(dirReal) ?? [])].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    for (const child of names) {
      if (child.startsWith('.')) continue;
      const path = dirReal === '' ? child : `${dirReal}/${child}`;
      const name = dirName === '' ? child : `${dirName}/${child}`;
      const shown = `${prefix}${name}`;
      let target: Resolution;
      const link = links.get(path);
      if (link) {
        const text = targets.get(link.oid) ?? '(a path too long to be one)';
        target = resolveLink(path);
        if (target.kind === 'outside' || target.kind === 'missing' || target.kind === 'loop') {
          diagnostics.push(
            fileProblem(
              shown,
              'symlink',
              target.kind === 'outside'
                ? `symlink points outside the fleet directory (to ${text}); fleet files must live inside it`
                : target.kind === 'loop'
                  ? `symlink to ${text} loops back on itself and leads to no file`
                  : `symlink points to ${text}, which does not exist at ${at}`,
            ),
          );
          continue;
        }
      } else if (blobs.has(path)) target = { kind: 'file', path };
      else if (children.has(path)) target = { kind: 'dir', path };
      else target = { kind: 'other', path };

      if (target.kind === 'dir') {
        if (!visited.has(target.path)) {
          visited.add(target.path);
          queue.push({ real: target.path, name });
        }
        continue;
      }
      if (target.kind !== 'file' || !isFleetFileName(child)) continue;
      if (wanted.length >= limits.maxFiles) {
        diagnostics.push(
          fileProblem(
            root,
            'too-many-files',
            `more than ${limits.maxFiles} fleet files; a fleet may have at most ${limits.maxFiles}`,
          ),
        );
        break walk;
      }
      const blob = blobs.get(target.path)!;
      if (blob.size > limits.maxFileBytes) {
        diagnostics.push(tooLarge(shown, blob.size, limits));
        continue;
      }
      total += blob.size;
      if (total > limits.maxTotalBytes) {
        diagnostics.push(totalTooLarge(root, limits));
        break walk;
      }
      wanted.push({ name, display: shown, oid: blob.oid });
    }
  }

  const bytes = await repo.readBlobs([...new Set(wanted.map((w) => w.oid))]);
  const files: SourceFile[] = wanted.map((w) => ({
    name: w.name,
    display: w.display,
    bytes: bytes.get(w.oid)!,
  }));
  return { root, files, diagnostics, commit };
}

/** What each symlink points to, read in one batch; links too long to be paths are left out. */
async function linkTargets(repo: GitRepository, links: TreeEntry[]): Promise<Map<string, string>> {
  const oids = [...new Set(links.filter((l) => l.size <= MAX_LINK_BYTES).map((l) => l.oid))];
  const blobs = await repo.readBlobs(oids);
  return new Map([...blobs].map(([oid, b]) => [oid, b.toString('utf8')]));
}
