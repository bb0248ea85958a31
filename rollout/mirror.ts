// The git mirror in the data directory: a bare repository that follows the remote's fleet
// branch and state branch, and loads each revision's fleet once (read, validated, cached).

import { join } from 'node:path';
import { formatText } from '../core/diagnostics.ts';
import { FleetwaveError, isFleetwaveError } from '../core/errors.ts';
import type { FleetModel } from '../core/fleet/model.ts';
import { validateFleet } from '../core/fleet/validate.ts';
import { GitRepository } from '../git/repository.ts';
import { readFleetAtRevision } from '../source/revision.ts';

export type LoadedRevision =
  | { commit: string; valid: true; model: FleetModel }
  | { commit: string; valid: false; errors: string[] };

export interface RemoteTips {
  branch?: string;
  state?: string;
}

const CACHE_SIZE = 64;

export class Mirror {
  readonly repo: GitRepository;
  readonly remote: string;
  readonly branchRef: string;
  readonly stateRef: string;
  private readonly fleetDir: string;
  private readonly cache = new Map<string, Promise<LoadedRevision>>();

  private constructor(
    repo: GitRepository,
    remote: string,
    branch: string,
    stateBranch: string,
    fleetDir: string,
  ) {
    this.repo = repo;
    this.remote = remote;
    this.branchRef = `refs/heads/${branch}`;
    this.stateRef = `refs/heads/${stateBranch}`;
    this.fleetDir = fleetDir;
  }

  static async open(options: {
    dataDir: string;
    remote: string;
    branch: string;
    stateBranch: string;
    fleetDir: string;
    /** Start git commands from a small helper process (GitLauncher): for the reconciler. */
    launcher?: boolean;
  }): Promise<Mirror> {
    // An https remote that stalls must not hold the sync forever: git gives up below 1 KB/s
    // for 30 s, the fetch fails, and the last good rollout keeps serving.
    const repo = await GitRepository.initBare(
      join(options.dataDir, 'mirror.git'),
      { GIT_HTTP_LOW_SPEED_LIMIT: '1000', GIT_HTTP_LOW_SPEED_TIME: '30' },
      { launcher: options.launcher ?? false },
    );
    return new Mirror(repo, options.remote, options.branch, options.stateBranch, options.fleetDir);
  }

  /**
   * Asks the remote where both branches are and fetches what moved (force-updating the
   * mirror's refs: the mirror follows the remote, force pushes included). Throws
   * GIT_FETCH_FAILED when the remote cannot be reached.
   *
   * `pushed`: the remote just told us something moved (a push webhook). Then both branches
   * are fetched at once, without asking where they are first: one round trip to the remote
   * instead of two, on the path from a push to the agents' new targets. When a branch is not
   * on the remote (the state branch before the first rollout), the usual way answers.
   */
  async fetch(pushed = false): Promise<RemoteTips> {
    if (pushed) {
      try {
        return await this.fetchBoth();
      } catch (e) {
        // git runs with LC_ALL=C: its words are stable.
        if (!/couldn't find remote ref/.test((e as Error).message)) throw e;
      }
    }
    const refs = [this.branchRef, this.stateRef];
    // The local refs are read while the remote answers: git processes overlap.
    const [remote, ...local] = await Promise.all([
      this.repo.lsRemote(this.remote, refs),
      ...refs.map((ref) => this.repo.readRef(ref)),
    ]);
    const specs: string[] = [];
    refs.forEach((ref, i) => {
      const sha = remote.get(ref);
      if (sha !== undefined && sha !== local[i]) specs.push(`+${ref}:${ref}`);
    });
    await this.repo.fetchRefspecs(this.remote, specs);
    const tips: RemoteTips = {};
    const branch = remote.get(this.branchRef);
    const state = remote.get(this.stateRef);
    if (branch !== undefined) tips.branch = branch;
    if (state !== undefined) tips.state = state;
    return tips;
  }

  /** Both branches fetched in one `git fetch`; it fails when either is not on the remote. */
  private async fetchBoth(): Promise<RemoteTips> {
    const refs = [this.branchRef, this.stateRef];
    await this.repo.fetchRefspecs(
      this.remote,
      refs.map((ref) => `+${ref}:${ref}`),
    );
    // Forced refspecs: each local ref is now where the remote's was.
    const [branch, state] = await Promise.all(refs.map((ref) => this.repo.readRef(ref)));
    if (branch === undefined || state === undefined) {
      throw new FleetwaveError('GIT_FAILED', 'a fetched branch is missing from the mirror');
    }
    return { branch, state };
  }

  /** Ends the git processes the mirror keeps (its object reader and launcher). */
  close(): void {
    this.repo.close();
  }

  /** The fleet at `commit`, read and validated once. */
  load(commit: string): Promise<LoadedRevision> {
    let loaded = this.cache.get(commit);
    if (loaded) {
      // Refresh its place: the cache forgets the least recently used revision first.
      this.cache.delete(commit);
      this.cache.set(commit, loaded);
      return loaded;
    }
    loaded = this.read(commit);
    this.cache.set(commit, loaded);
    if (this.cache.size > CACHE_SIZE) this.cache.delete(this.cache.keys().next().value!);
    // A git failure (not a fleet error) is not a verdict on the revision: try again next time.
    loaded.catch(() => this.cache.delete(commit));
    return loaded;
  }

  private async read(commit: string): Promise<LoadedRevision> {
    try {
      const source = await readFleetAtRevision(this.repo, commit, this.fleetDir);
      const result = validateFleet(source);
      if (result.model) return { commit, valid: true, model: result.model };
      return {
        commit,
        valid: false,
        errors: result.diagnostics.filter((d) => d.severity === 'error').map(formatText),
      };
    } catch (e) {
      if (isFleetwaveError(e, 'FLEET_NOT_FOUND') || isFleetwaveError(e, 'USAGE')) {
        return { commit, valid: false, errors: [(e as FleetwaveError).message] };
      }
      throw e;
    }
  }

  /** The newest valid revision among the first `max` first-parent commits of `tip`. */
  async newestValid(tip: string, max = 100): Promise<LoadedRevision | undefined> {
    for (const commit of await this.repo.firstParents(tip, max)) {
      const loaded = await this.load(commit);
      if (loaded.valid) return loaded;
    }
    return undefined;
  }

  async readStateFile(commit: string, file: string): Promise<string | undefined> {
    const bytes = await this.repo.readFileAt(commit, file);
    return bytes?.toString('utf8');
  }

  /** Keeps served revisions reachable in the mirror even if the remote force-pushes them away. */
  async keep(name: 'stable' | 'candidate', commit: string): Promise<void> {
    await this.repo.updateRef(`refs/fleetwave/served/${name}`, commit);
  }

  /** Whether a commit is present in the mirror. */
  async has(commit: string): Promise<boolean> {
    try {
      await this.repo.resolveCommit(commit);
      return true;
    } catch (e) {
      if (isFleetwaveError(e, 'GIT_REVISION_NOT_FOUND')) return false;
      throw new FleetwaveError('GIT_FAILED', `cannot look up ${commit}`, { cause: e });
    }
  }
}
