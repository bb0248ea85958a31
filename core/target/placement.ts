// Which wave an agent belongs to: a pure function of the fleet's salt, the agent's id and labels.
//
// bucket = uint32be(SHA-256(utf8(salt + "\0" + id))[0..4]) mod 10000
//
// SHA-256 is specified bit for bit (FIPS 180-4), so the bucket is the same on every machine,
// architecture and Node version, and in any other language that reimplements it. The modulo
// bias of 2^32 mod 10000 is about 2·10⁻⁶ relative, far below sampling noise. The salt is
// `spec.salt`, else `metadata.name`: two fleets do not share their canaries, and changing the
// salt reshuffles every wave.
//
// An agent's wave is the first wave whose selector matches its labels and whose percent admits
// its bucket (bucket < percent × 100). The bucket depends on nothing but the salt and the id,
// so placement is sticky; raising a wave's percent only admits more buckets to it, so an agent
// can only move to that wave from a later one, never to a later wave.

import { hash } from 'node:crypto';
import { FleetwaveError } from '../errors.ts';
import type { FleetDocument, FleetModel, Wave } from '../fleet/model.ts';
import { matches, type Labels } from '../fleet/selector.ts';
import type { Agent, Placement } from './model.ts';

export const BUCKETS = 10_000;

export function fleetSalt(fleet: FleetDocument): string {
  return fleet.spec.salt ?? fleet.metadata.name;
}

export function bucketOf(salt: string, agentId: string): number {
  // The first 8 hex digits are the first 4 bytes, big-endian (hex output is the fastest here).
  const digest = hash('sha256', `${salt}\0${agentId}`, 'hex');
  return parseInt(digest.slice(0, 8), 16) % BUCKETS;
}

/**
 * The buckets a wave admits are `0 … threshold-1`. `percent × 100` is rounded to 6 decimals
 * first so that float noise (0.07 × 100 = 7.000000000000001) does not admit an extra bucket.
 */
export function waveThreshold(percent: number): number {
  return Math.ceil(Math.round(percent * 100 * 1e6) / 1e6);
}

/** Index of the first wave admitting this bucket and these labels, or -1 when none does. */
export function waveIndex(waves: readonly Wave[], bucket: number, labels: Labels): number {
  for (let i = 0; i < waves.length; i++) {
    const wave = waves[i]!;
    if (bucket < waveThreshold(wave.percent) && matches(wave.selector, labels)) return i;
  }
  return -1;
}

/** Checks what makes placement total: the last wave selects everyone at 100%. */
export function assertPlaceable(model: FleetModel): void {
  const waves = model.fleet.spec.waves;
  const last = waves[waves.length - 1];
  if (!last || last.selector || waveThreshold(last.percent) < BUCKETS) {
    throw new FleetwaveError(
      'FLEET_INVALID',
      'the last wave must select every agent at 100 percent, or some agents would have no wave',
    );
  }
}

export function place(model: FleetModel, agent: Agent): Placement {
  const waves = model.fleet.spec.waves;
  const bucket = bucketOf(fleetSalt(model.fleet), agent.id);
  const index = waveIndex(waves, bucket, agent.labels);
  if (index < 0) assertPlaceable(model);
  return { bucket, index, wave: waves[index]!.name };
}
