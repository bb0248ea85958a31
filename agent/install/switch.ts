// The install directory on disk and the moves that keep it consistent through a crash:
//
//   DIR/versions/<version>/              an unpacked version (its install hook already run)
//   DIR/versions/.<version>.installed    its marker: the artifact's sha256, written last
//   DIR/versions/.partial-<random>/      an unpack in progress (removed at the next start)
//   DIR/current -> versions/<version>    what runs
//
// A version is unpacked into a partial directory and renamed into place whole; its marker is
// written (atomically) only after its hook succeeded; `current` is switched by renaming a new
// symlink over the old one, which rename(2) makes atomic. A process killed at any moment leaves
// `current` on a complete version, the old or the new, never on half of one.

import { randomBytes } from 'node:crypto';
import {
  chmod,
  lstat,
  mkdir,
  readFile,
  readdir,
  readlink,
  rename,
  rm,
  symlink,
} from 'node:fs/promises';
import { join } from 'node:path';
import { syncDirectory, writeFileAtomic } from '../cache.ts';
import { AgentError, describe } from '../errors.ts';

export const VERSIONS = 'versions';
export const CURRENT = 'current';

/** A version is a directory name: letters and digits first, then also . + _ - (at most 128). */
export function versionDirName(version: string): string {
  if (!/^[0-9A-Za-z][0-9A-Za-z.+_-]{0,127}$/.test(version))
    throw new AgentError(
      'INSTALL_FAILED',
      `the version "${version.slice(0, 140)}" cannot be a directory name (letters, digits and . + _ -, at most 128)`,
    );
  return version;
}

export class InstallDir {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
  }

  get versions(): string {
    return join(this.dir, VERSIONS);
  }

  versionPath(name: string): string {
    return join(this.versions, name);
  }

  private marker(name: string): string {
    return join(this.versions, `.${name}.installed`);
  }

  /** Creates the directories and removes what a crash left half done. */
  async prepare(): Promise<void> {
    try {
      await mkdir(this.versions, { recursive: true, mode: 0o755 });
      for (const name of await readdir(this.versions)) {
        if (name.startsWith('.partial-'))
          await rm(join(this.versions, name), { recursive: true, force: true });
      }
    } catch (e) {
      throw new AgentError(
        'INSTALL_FAILED',
        `the install directory ${this.dir} cannot be prepared: ${describe(e)}`,
        { cause: e },
      );
    }
  }

  /** A fresh empty directory to unpack into, renamed into place by `promote`. */
  async partial(): Promise<string> {
    const path = join(this.versions, `.partial-${randomBytes(6).toString('hex')}`);
    await mkdir(path, { mode: 0o755 });
    // Readable by the managed software whatever the agent's umask (UMask=0077 under systemd).
    await chmod(path, 0o755);
    return path;
  }

  /** Whether `name` is installed from the artifact with this sha256 (its marker says so). */
  async installed(name: string, sha256: string): Promise<boolean> {
    try {
      const marker = (await readFile(this.marker(name), 'utf8')).trim();
      return marker === sha256 && (await lstat(this.versionPath(name))).isDirectory();
    } catch {
      return false;
    }
  }

  /** Moves a finished partial directory into place as `name`, replacing what was there. */
  async promote(partial: string, name: string): Promise<string> {
    const final = this.versionPath(name);
    await this.remove(name);
    await rename(partial, final);
    await syncDirectory(this.versions);
    return final;
  }

  /** Records that `name` is complete: only then may `current` point at it. */
  async markInstalled(name: string, sha256: string): Promise<void> {
    await writeFileAtomic(this.marker(name), `${sha256}\n`);
  }

  async remove(name: string): Promise<void> {
    await rm(this.marker(name), { force: true });
    await rm(this.versionPath(name), { recursive: true, force: true });
  }

  /** The version `current` points at, or undefined. */
  async current(): Promise<string | undefined> {
    try {
      const target = await readlink(join(this.dir, CURRENT));
      const m = /^versions\/([^/]+)$/.exec(target);
      return m ? m[1] : undefined;
    } catch {
      return undefined;
    }
  }

  /** Points `current` at `name`: a new symlink renamed over the old one (atomic). */
  async switchTo(name: string): Promise<void> {
    const temp = join(this.dir, `.current-${randomBytes(6).toString('hex')}`);
    try {
      await symlink(`${VERSIONS}/${name}`, temp);
      await rename(temp, join(this.dir, CURRENT));
      await syncDirectory(this.dir);
    } catch (e) {
      await rm(temp, { force: true }).catch(() => {});
      throw new AgentError(
        'INSTALL_FAILED',
        `cannot switch ${CURRENT} to ${name}: ${describe(e)}`,
        {
          cause: e,
        },
      );
    }
  }

  /** Removes every version but `keep` (the current and the previous one), and stray links. */
  async prune(keep: ReadonlySet<string>): Promise<void> {
    let names: string[];
    try {
      names = await readdir(this.versions);
    } catch {
      return;
    }
    for (const name of names) {
      if (name.startsWith('.partial-')) continue; // one may be in progress
      const version = /^\.(.+)\.installed$/.exec(name)?.[1] ?? name;
      if (!keep.has(version))
        await rm(join(this.versions, name), { recursive: true, force: true }).catch(() => {});
    }
    for (const name of await readdir(this.dir).catch(() => [] as string[]))
      if (name.startsWith('.current-')) await rm(join(this.dir, name), { force: true });
  }
}
