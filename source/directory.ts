// Reads a fleet from a directory on disk: every *.yaml / *.yml below it, refusing files that
// are too large and symlinks that lead outside the fleet, before reading a byte of them.

import { constants } from 'node:fs';
import { lstat, open, readdir, readlink, realpath, stat } from 'node:fs/promises';
import type { Dirent, Stats } from 'node:fs';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import type { Diagnostic, DiagnosticCode } from '../core/diagnostics.ts';
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

export function fileProblem(file: string, code: DiagnosticCode, message: string): Diagnostic {
  return { file, line: 0, col: 0, severity: 'error', code, message };
}

function inside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel));
}

function errorCode(e: unknown): string {
  return (e as NodeJS.ErrnoException | undefined)?.code ?? 'unknown error';
}

// O_NOFOLLOW: a file swapped for a symlink after we looked at it is refused, not followed.
// O_NONBLOCK: a FIFO swapped in cannot make the open hang.
const OPEN_FLAGS = constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0);

type ReadOutcome =
  | { kind: 'bytes'; bytes: Uint8Array }
  | { kind: 'too-large'; size: number }
  | { kind: 'not-a-file' };

/** Reads a regular file of at most `max` bytes; the size is checked on the open file. */
async function readBounded(path: string, max: number): Promise<ReadOutcome> {
  const handle = await open(path, OPEN_FLAGS);
  try {
    const info = await handle.stat();
    if (!info.isFile()) return { kind: 'not-a-file' };
    if (info.size > max) return { kind: 'too-large', size: info.size };
    const bytes = new Uint8Array(info.size);
    let filled = 0;
    while (filled < bytes.length) {
      const { bytesRead } = await handle.read(bytes, filled, bytes.length - filled, filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    return { kind: 'bytes', bytes: filled === bytes.length ? bytes : bytes.subarray(0, filled) };
  } finally {
    await handle.close();
  }
}

const READ_BATCH = 16;

type EntryKind = 'file' | 'dir' | 'symlink' | 'other';

async function kindOf(entry: Dirent, path: string): Promise<EntryKind> {
  if (entry.isSymbolicLink()) return 'symlink';
  if (entry.isDirectory()) return 'dir';
  if (entry.isFile()) return 'file';
  // Some file systems do not report the type while listing a directory: ask.
  if (entry.isBlockDevice() || entry.isCharacterDevice() || entry.isFIFO() || entry.isSocket())
    return 'other';
  const info = await lstat(path);
  return info.isSymbolicLink()
    ? 'symlink'
    : info.isDirectory()
      ? 'dir'
      : info.isFile()
        ? 'file'
        : 'other';
}

export async function readFleetDirectory(
  dir: string,
  options: { cwd?: string; limits?: Limits } = {},
): Promise<FleetSource> {
  const cwd = options.cwd ?? process.cwd();
  const limits = options.limits ?? DEFAULT_LIMITS;
  const root = resolve(cwd, dir);
  const rootShown = display(cwd, root);
  let realRoot: string;
  try {
    realRoot = await realpath(root);
    if (!(await stat(realRoot)).isDirectory()) throw new Error('not a directory');
  } catch (e) {
    throw new FleetwaveError(
      'FLEET_NOT_FOUND',
      `fleet directory ${rootShown} does not exist or is not a directory`,
      { cause: e },
    );
  }

  const files: SourceFile[] = [];
  const diagnostics: Diagnostic[] = [];
  const done = (): FleetSource => ({ root: rootShown, files, diagnostics });
  let total = 0;
  // Every directory is walked by its real path, once: a symlinked directory loop ends here.
  const visited = new Set<string>([realRoot]);
  // Breadth-first with an explicit queue: deep directory trees cannot overflow anything.
  const queue: Array<{ real: string; name: string }> = [{ real: realRoot, name: '' }];
  for (let next = 0; next < queue.length; next++) {
    const { real: dirReal, name: dirName } = queue[next]!;
    let entries: Dirent[];
    try {
      entries = await readdir(dirReal, { withFileTypes: true });
    } catch (e) {
      const shown = dirName === '' ? rootShown : display(cwd, join(root, dirName));
      diagnostics.push(
        fileProblem(shown, 'unreadable', `cannot read this directory (${errorCode(e)})`),
      );
      continue;
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const reads: Array<{ name: string; shown: string; target: string }> = [];
    let stop = false;
    for (const entry of entries) {
      if (entry.name.startsWith('.')) continue;
      const path = join(dirReal, entry.name);
      const name = dirName === '' ? entry.name : `${dirName}/${entry.name}`;
      // People see the path they asked for, through symlinks, not where the bytes live.
      const shown = display(cwd, join(root, name));
      let target = path;
      let kind: EntryKind;
      try {
        kind = await kindOf(entry, path);
        if (kind === 'symlink') {
          const link = await readlink(path);
          try {
            target = await realpath(path);
          } catch (e) {
            diagnostics.push(
              fileProblem(
                shown,
                'symlink',
                errorCode(e) === 'ELOOP'
                  ? `symlink to ${link} loops back on itself and leads to no file`
                  : `symlink points to ${link}, which does not exist`,
              ),
            );
            continue;
          }
          if (!inside(realRoot, target)) {
            diagnostics.push(
              fileProblem(
                shown,
                'symlink',
                `symlink points outside the fleet directory (to ${link}); fleet files must live inside it`,
              ),
            );
            continue;
          }
          const info: Stats = await stat(target);
          kind = info.isDirectory() ? 'dir' : info.isFile() ? 'file' : 'other';
        }
      } catch (e) {
        diagnostics.push(fileProblem(shown, 'unreadable', `cannot read this (${errorCode(e)})`));
        continue;
      }
      if (kind === 'dir') {
        if (!visited.has(target)) {
          visited.add(target);
          queue.push({ real: target, name });
        }
        continue;
      }
      if (kind !== 'file' || !isFleetFileName(entry.name)) continue;
      if (files.length + reads.length >= limits.maxFiles) {
        diagnostics.push(
          fileProblem(
            rootShown,
            'too-many-files',
            `more than ${limits.maxFiles} fleet files; a fleet may have at most ${limits.maxFiles}`,
          ),
        );
        stop = true;
        break;
      }
      reads.push({ name, shown, target });
    }
    // The files of a directory are read a batch at a time (the reads wait on the disk, not on
    // us) and counted in name order, so the limits cut at the same file every time and no more
    // than one batch is read past the total limit.
    for (let from = 0; from < reads.length; from += READ_BATCH) {
      const batch = reads.slice(from, from + READ_BATCH);
      const outcomes = await Promise.all(
        batch.map(async (r): Promise<ReadOutcome | { kind: 'error'; code: string }> => {
          try {
            return await readBounded(r.target, limits.maxFileBytes);
          } catch (e) {
            return { kind: 'error', code: errorCode(e) };
          }
        }),
      );
      for (const [i, r] of batch.entries()) {
        const outcome = outcomes[i]!;
        if (outcome.kind === 'not-a-file') continue;
        if (outcome.kind === 'error') {
          diagnostics.push(
            fileProblem(r.shown, 'unreadable', `cannot read this file (${outcome.code})`),
          );
          continue;
        }
        if (outcome.kind === 'too-large') {
          diagnostics.push(tooLarge(r.shown, outcome.size, limits));
          continue;
        }
        total += outcome.bytes.length;
        if (total > limits.maxTotalBytes) {
          diagnostics.push(totalTooLarge(rootShown, limits));
          return done();
        }
        files.push({ name: r.name, display: r.shown, bytes: outcome.bytes });
      }
    }
    if (stop) return done();
  }
  return done();
}

export function tooLarge(file: string, size: number, limits: Limits): Diagnostic {
  return fileProblem(
    file,
    'too-large',
    `file is ${formatBytes(size)} (${size} bytes); a fleet file may be at most ${formatBytes(limits.maxFileBytes)}`,
  );
}

export function totalTooLarge(root: string, limits: Limits): Diagnostic {
  return fileProblem(
    root,
    'too-large',
    `the fleet is larger than ${formatBytes(limits.maxTotalBytes)} in total`,
  );
}

/** `1 MiB`, `1.05 MiB`, `12.5 KiB`, `300 bytes`: exact sizes stay whole, others keep 2 decimals. */
export function formatBytes(n: number): string {
  const unit = (size: number, name: string): string =>
    `${Number.isInteger(n / size) ? n / size : (n / size).toFixed(2)} ${name}`;
  if (n >= 1024 * 1024) return unit(1024 * 1024, 'MiB');
  if (n >= 1024) return unit(1024, 'KiB');
  return `${n} bytes`;
}
