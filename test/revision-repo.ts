// A fleet repository with history, built with the git binary in a temp dir, for reading fleets
// at a revision: a work tree with several commits (no fleet yet, 2.4.0, 2.5.0, symlinks, hostile
// files), uncommitted changes on top, and a bare clone of it.

import { cp, mkdir, mkdtemp, readFile, symlink, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_LIMITS } from '../core/fleet/source.ts';
import { REPO_ROOT } from './helpers/cli.ts';
import { git } from './helpers/git.ts';

export const MARKER = 'MARKER-fw-revision-51d2';

export type Commit = 'empty' | 'v240' | 'v250' | 'symlinks' | 'hostile';

export interface RevisionRepo {
  /** The temp dir holding both; remove it when done. */
  scratch: string;
  /** The work tree: commits `empty` (no fleet), `v240`, `v250`, `symlinks`, `hostile`. */
  work: string;
  bare: string;
  commits: Record<Commit, string>;
}

function commit(dir: string, message: string): string {
  git(dir, 'add', '--all');
  git(dir, 'commit', '--quiet', '--allow-empty', '--message', message);
  return git(dir, 'rev-parse', 'HEAD');
}

export async function revisionRepo(): Promise<RevisionRepo> {
  const scratch = await mkdtemp(join(tmpdir(), 'fw-revision-'));
  const work = join(scratch, 'work');
  const commits: Record<Commit, string> = {
    empty: '',
    v240: '',
    v250: '',
    symlinks: '',
    hostile: '',
  };
  await mkdir(work);
  git(work, 'init', '--quiet', '--initial-branch=main');
  await writeFile(join(work, 'README.md'), 'the fleet of acme\n');
  commits.empty = commit(work, 'no fleet yet');

  await cp(join(REPO_ROOT, 'fleet'), join(work, 'fleet'), { recursive: true });
  commits.v240 = commit(work, 'the example fleet, version 2.4.0');
  git(work, 'tag', '--annotate', '--message', 'first fleet', 'first');

  const fleetYaml = join(work, 'fleet/fleet.yaml');
  await writeFile(
    fleetYaml,
    (await readFile(fleetYaml, 'utf8')).replace('version: 2.4.0', 'version: 2.5.0'),
  );
  commits.v250 = commit(work, 'roll out 2.5.0');

  // A layer behind a chain of two symlinks that stay inside the fleet; a directory symlink
  // back to the root (a loop); symlinks that leave the fleet, relative and absolute.
  await mkdir(join(work, 'fleet/links'));
  await mkdir(join(work, 'outside'));
  await writeFile(join(work, 'outside/passwd'), `root:x:0:0:${MARKER}:/root:/bin/bash\n`);
  await cp(join(work, 'fleet/config/30-windows.yaml'), join(work, 'fleet/windows.layer'));
  await unlink(join(work, 'fleet/config/30-windows.yaml'));
  await symlink('../windows.layer', join(work, 'fleet/links/windows.link'));
  await symlink('../links/windows.link', join(work, 'fleet/config/30-windows.yaml'));
  await symlink('..', join(work, 'fleet/config/up'));
  await symlink('../../outside/passwd', join(work, 'fleet/config/80-passwd.yaml'));
  await symlink('/etc/passwd', join(work, 'fleet/config/81-absolute.yaml'));
  await symlink(
    '../links/../../outside/../fleet/windows.layer',
    join(work, 'fleet/config/82-out-and-back.yaml'),
  );
  await symlink('nowhere.yaml', join(work, 'fleet/config/83-dangling.yaml'));
  commits.symlinks = commit(work, 'symlinks');

  // A blob over the size limit, bytes that are not UTF-8, and nothing else wrong.
  for (const name of [
    '80-passwd.yaml',
    '81-absolute.yaml',
    '82-out-and-back.yaml',
    '83-dangling.yaml',
  ])
    await unlink(join(work, 'fleet/config', name));
  await writeFile(
    join(work, 'fleet/config/90-big.yaml'),
    Buffer.alloc(DEFAULT_LIMITS.maxFileBytes + 1, '# padding\n'),
  );
  await writeFile(
    join(work, 'fleet/config/91-latin1.yaml'),
    Buffer.concat([Buffer.from('a: 1\nb: caf'), Buffer.from([0xe9]), Buffer.from('\n')]),
  );
  commits.hostile = commit(work, 'hostile files');

  // The work tree now differs from every commit: reading a revision must not see this.
  await writeFile(fleetYaml, 'this: [is not committed\n');
  await writeFile(join(work, 'fleet/config/99-uncommitted.yaml'), 'kind: Nonsense\n');

  const bare = join(scratch, 'bare.git');
  git(scratch, 'clone', '--quiet', '--bare', work, bare);
  return { scratch, work, bare, commits };
}
