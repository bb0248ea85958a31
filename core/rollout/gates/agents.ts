// Gates on the candidate cohort's latest reports: minAgents, minAppliedRatio (with its apply
// deadline), maxFailedRatio, maxErrorRate, maxSilentRatio. Ratio gates judge only once
// minAgents (default 1) agents run the candidate: no verdict on three machines.

import { parseDuration } from '../../fleet/duration.ts';
import { errorRate, failedRatio } from '../observations.ts';
import { num, type GateContext, type GateResult } from './gate.ts';

export function agentGates(ctx: GateContext): GateResult[] {
  const gates = ctx.wave.gates ?? {};
  const c = ctx.fleet.candidate;
  const out: GateResult[] = [];
  const minAgents = gates.minAgents ?? 1;
  const enough = c.applied >= minAgents;
  const tooFew = (gate: string, threshold: number): GateResult => ({
    gate,
    verdict: 'wait',
    message: `${c.applied} of ${minAgents} agents needed run the candidate`,
    threshold,
    sample: c.applied,
  });

  if (gates.minAgents !== undefined) {
    out.push({
      gate: 'minAgents',
      verdict: enough ? 'pass' : 'wait',
      message: `${c.applied} agents run the candidate (${enough ? 'at least' : 'need'} ${minAgents})`,
      value: c.applied,
      threshold: minAgents,
      sample: c.applied,
    });
  }

  if (gates.minAppliedRatio !== undefined) {
    const ratio = c.agents === 0 ? 0 : c.applied / c.agents;
    const deadline = gates.applyDeadline ? parseDuration(gates.applyDeadline) : undefined;
    const late = deadline !== undefined && ctx.now - ctx.waveStartedAt >= deadline;
    const base = {
      gate: 'minAppliedRatio',
      value: ratio,
      threshold: gates.minAppliedRatio,
      sample: c.agents,
    };
    const share = `${c.applied} of ${c.agents} agents applied (${num(ratio)})`;
    if (c.agents > 0 && ratio >= gates.minAppliedRatio) {
      out.push({ ...base, verdict: 'pass', message: `${share} >= ${num(gates.minAppliedRatio)}` });
    } else if (late) {
      out.push({
        ...base,
        verdict: 'fail',
        message: `${share} < ${num(gates.minAppliedRatio)} after the apply deadline ${gates.applyDeadline}`,
      });
    } else {
      out.push({ ...base, verdict: 'wait', message: `${share} < ${num(gates.minAppliedRatio)}` });
    }
  }

  const limit = (gate: string, what: string, value: number, max: number, sample: number) => {
    // `NaN > max` is false: a value that is not a number is no evidence, never a pass.
    if (!Number.isFinite(value)) {
      out.push({
        gate,
        verdict: 'wait',
        message:
          sample === 0
            ? `no agent runs the candidate yet: no ${what} to judge`
            : `${what} is ${value}, not a number to judge (${sample} agents)`,
        threshold: max,
        sample,
      });
      return;
    }
    out.push({
      gate,
      verdict: value > max ? 'fail' : 'pass',
      message: `${what} ${num(value)} ${value > max ? '>' : '<='} ${num(max)} (${sample} agents)`,
      value,
      threshold: max,
      sample,
    });
  };

  if (gates.maxFailedRatio !== undefined) {
    if (!enough) out.push(tooFew('maxFailedRatio', gates.maxFailedRatio));
    else {
      // failedRatio() is 0 for no agents; here that would be a pass on no evidence.
      const ratio = c.applied === 0 ? NaN : failedRatio(c);
      limit('maxFailedRatio', 'failed ratio', ratio, gates.maxFailedRatio, c.applied);
    }
  }

  if (gates.maxSilentRatio !== undefined) {
    if (!enough) out.push(tooFew('maxSilentRatio', gates.maxSilentRatio));
    else
      limit(
        'maxSilentRatio',
        'silent ratio',
        c.silent / c.applied,
        gates.maxSilentRatio,
        c.applied,
      );
  }

  if (gates.maxErrorRate !== undefined) {
    if (!enough) out.push(tooFew('maxErrorRate', gates.maxErrorRate));
    else if (c.reporting === 0) {
      out.push({
        gate: 'maxErrorRate',
        verdict: 'wait',
        message: `no agent running the candidate reports requests yet`,
        threshold: gates.maxErrorRate,
        sample: 0,
      });
    } else {
      const rate = errorRate(c);
      const max = gates.maxErrorRate;
      if (!Number.isFinite(rate)) {
        limit('maxErrorRate', 'error rate', rate, max, c.reporting);
      } else {
        out.push({
          gate: 'maxErrorRate',
          verdict: rate > max ? 'fail' : 'pass',
          message: `error rate ${num(rate)} ${rate > max ? '>' : '<='} ${num(max)} (mean of ${c.reporting} agents' rates, ${c.requests} requests)`,
          value: rate,
          threshold: max,
          sample: c.reporting,
        });
      }
    }
  }
  return out;
}
