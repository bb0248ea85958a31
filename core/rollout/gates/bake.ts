// bake: the candidate stays on a wave at least this long before it may move on.

import { formatDuration, parseDuration } from '../../fleet/duration.ts';
import type { GateContext, GateResult } from './gate.ts';

export function bakeGate(ctx: Pick<GateContext, 'wave' | 'waveStartedAt' | 'now'>): GateResult {
  const bake = parseDuration(ctx.wave.bake) ?? 0;
  const elapsed = Math.max(0, ctx.now - ctx.waveStartedAt);
  const base = { gate: 'bake', value: elapsed / 1000, threshold: bake / 1000 };
  return elapsed >= bake
    ? { ...base, verdict: 'pass', message: `baked ${formatDuration(elapsed)} of ${ctx.wave.bake}` }
    : {
        ...base,
        verdict: 'wait',
        message: `baking: ${formatDuration(elapsed)} of ${ctx.wave.bake}`,
      };
}
