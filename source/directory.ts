// Reads a fleet from a directory on disk: every *.yaml / *.yml below it, refusing files that
// are too large and symlinks that lead outside the fleet, before reading a byte of them.

import { lstat, readdir, readFile, realpath, stat } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import type { Diagnostic } from '../core/diagnostics.ts';
import { FleetwaveError } from '../core/errors.ts';
import {
  DEFAULT_LIMITS,
  isFleetFileName,
  type FleetSource,
  type Limits,
  type SourceFile,
} from '../core/fleet/source.ts';

function display(cwd: string, path: string): string {
  const rel = relative(cwd, path);
  return (rel === '' ? '.' : rel).split(sep).join('/');
}

function fileProblem(file: string, code: string, message: string): Diagnostic {
  return { file, line: 0, col: 0, severity: 'error', code, message };
}

function inside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel === '' || (!rel.startsWith('..') && !rel.startsWith(sep) && rel !== '..');
}

export async function readFleetDirectory(
  dir: string,
  options: { cwd?: string; limits?: Limits } = {},
): Promise<FleetSource> {
  const cwd = options.cwd ?? process.cwd();
  const limits = options.limits ?? DEFAULT_LIMITS;
  const root = join(cwd, dir);
  let realRoot: string;
  try {
    realRoot = await realpath(root);
    if (!(await stat(realRoot)).isDirectory()) throw new Error('not a directory');
  } catch (e) {
    throw new FleetwaveError(
      'FLEET_NOT_FOUND',
      `fleet directory ${display(cwd, root)} does not exist or is not a directory`,
      {
        cause: e,
      },
    );
  }

  const files: SourceFile[] = [];
  const diagnostics: Diagnostic[] = [];
  let total = 0;
  const visited = new Set<string>([realRoot]);
  // Breadth-first with an explicit queue: deep directory trees cannot overflow anything.
  const queue: Array<{ path: string; name: string }> = [{ path: root, name: '' }];
  while (queue.length > 0) {
    const { path: dirPath, name: dirName } = queue.shift()!;
    const entries = (await readdir(dirPath, { withFileTypes: true })).sort((a, b) =>
      a.name < b.name ? -1 : 1,
    );
    for (const entry of entries) {
      if (entry.name.startsWith('.')) continue;
      const path = join(dirPath, entry.name);
      const name = dirName === '' ? entry.name : `${dirName}/${entry.name}`;
      const shown = display(cwd, path);
      let target = path;
      let info = await lstat(path);
      if (info.isSymbolicLink()) {
        try {
          target = await realpath(path);
        } catch {
          diagnostics.push(fileProblem(shown, 'symlink', 'symlink points to nothing'));
          continue;
        }
        if (!inside(realRoot, target)) {
          diagnostics.push(
            fileProblem(
              shown,
              'symlink',
              'symlink points outside the fleet directory; fleet files must live inside it',
            ),
          );
          continue;
        }
        info = await stat(target);
      }
      if (info.isDirectory()) {
        if (!visited.has(target)) {
          visited.add(target);
          queue.push({ path: target, name });
        }
        continue;
      }
      if (!info.isFile() || !isFleetFileName(entry.name)) continue;
      if (files.length >= limits.maxFiles) {
        diagnostics.push(
          fileProblem(
            display(cwd, root),
            'too-many-files',
            `more than ${limits.maxFiles} fleet files`,
          ),
        );
        return { root: display(cwd, root), files, diagnostics };
      }
      if (info.size > limits.maxFileBytes) {
        diagnostics.push(
          fileProblem(
            shown,
            'too-large',
            `file is ${formatBytes(info.size)}; a fleet file may be at most ${formatBytes(limits.maxFileBytes)}`,
          ),
        );
        continue;
      }
      total += info.size;
      if (total > limits.maxTotalBytes) {
        diagnostics.push(
          fileProblem(
            display(cwd, root),
            'too-large',
            `the fleet is larger than ${formatBytes(limits.maxTotalBytes)} in total`,
          ),
        );
        return { root: display(cwd, root), files, diagnostics };
      }
      files.push({ name, display: shown, bytes: await readFile(target) });
    }
  }
  return { root: display(cwd, root), files, diagnostics };
}

export function formatBytes(n: number): string {
  if (n >= 1024 * 1024) return `${(n / (1024 * 1024)).toFixed(1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} bytes`;
}
