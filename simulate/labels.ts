// A deterministic, realistic fleet: environments, regions, platforms and roles in the
// proportions of a real one, plus labels no layer reads. Used by `fleetwave simulate`, by tests
// and by benchmarks.

import type { Agent } from '../core/target/model.ts';

/** mulberry32: a small seeded PRNG, so every run sees the same agents. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pick<T>(random: () => number, weighted: ReadonlyArray<readonly [T, number]>): T {
  let r = random() * weighted.reduce((s, [, w]) => s + w, 0);
  for (const [value, weight] of weighted) {
    r -= weight;
    if (r < 0) return value;
  }
  return weighted[weighted.length - 1]![0];
}

const ENVS = [
  ['prod', 70],
  ['staging', 20],
  ['internal', 10],
] as const;
const REGIONS = [
  ['eu-west-1', 30],
  ['eu-central-1', 15],
  ['us-east-1', 30],
  ['us-west-2', 15],
  ['ap-southeast-1', 10],
] as const;
const PLATFORMS: ReadonlyArray<readonly [readonly [string, string], number]> = [
  [['linux', 'amd64'], 70],
  [['linux', 'arm64'], 20],
  [['windows', 'amd64'], 10],
];
const ROLES = [
  ['web', 50],
  ['worker', 30],
  ['cache', 15],
  ['database', 5],
] as const;

export function syntheticAgents(count: number, seed = 1): Agent[] {
  const random = prng(seed);
  const agents: Agent[] = [];
  for (let i = 0; i < count; i++) {
    const env = pick(random, ENVS);
    const region = pick(random, REGIONS);
    const [os, arch] = pick(random, PLATFORMS);
    const role = pick(random, ROLES);
    agents.push({
      id: `${role}-${region}-${String(i).padStart(6, '0')}.acme.example`,
      labels: {
        env,
        region,
        os,
        arch,
        role,
        rack: `r${String(Math.floor(random() * 200)).padStart(3, '0')}`,
        team: `team-${Math.floor(random() * 40)}`,
      },
    });
  }
  return agents;
}
