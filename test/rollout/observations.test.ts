// Agent reports into cohorts: only reports of the candidate's etag count as candidate evidence.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  addReport,
  cohortOf,
  emptyTally,
  failedRatio,
  observeCohorts,
  type AgentSample,
} from '../../core/rollout/observations.ts';

const NOW = 1_000_000;
const agent = (id: string, over: Partial<AgentSample>): AgentSample => ({
  id,
  wave: 0,
  candidateEtag: 'cand',
  stableEtag: 'stab',
  at: NOW - 5_000,
  ...over,
});

describe('observeCohorts', () => {
  const samples = [
    agent('a', { current: 'cand', status: 'ok', errors: 1, requests: 100 }),
    agent('b', { current: 'cand', status: 'failed', errors: 50, requests: 100 }),
    agent('c', { current: 'cand', status: 'ok', at: NOW - 31_000 }), // took it, went silent
    agent('d', { current: 'stab', status: 'failed' }), // wave 0, not applied yet
    agent('e', { current: 'old-etag', status: 'failed' }), // neither: counts nowhere
    agent('f', { wave: 1, candidateEtag: undefined, current: 'stab', status: 'ok' }),
    agent('g', { wave: 1, candidateEtag: 'cand', current: 'cand', status: 'failed' }), // past wave k: not candidate evidence
  ];
  const { candidate, stable } = observeCohorts(samples, {
    wave: 0,
    now: NOW,
    silentAfterMs: 30_000,
  });

  it('counts the candidate cohort of waves 0..k by etag', () => {
    assert.deepEqual(candidate, {
      agents: 5,
      applied: 3,
      silent: 1,
      failed: 1,
      degraded: 0,
      errors: 51,
      requests: 200,
      reporting: 2,
      errorRates: 0.51,
    });
    assert.equal(failedRatio(candidate), 2 / 3); // the silent agent counts as a failure
  });

  it('counts the stable cohort by the stable etag', () => {
    assert.equal(stable.applied, 2);
    assert.equal(stable.failed, 1);
  });
});

describe('an agent that could not apply the candidate', () => {
  it('counts as a failure of the candidate, not of the stable target it still runs', () => {
    const samples = [
      agent('a', { current: 'cand', status: 'ok' }),
      agent('b', { current: 'stab', failedEtag: 'cand', status: 'failed' }),
      agent('c', { current: 'stab', status: 'ok' }),
      // A failure to apply some other target says nothing about this candidate.
      agent('d', { current: 'stab', failedEtag: 'older', status: 'failed' }),
    ];
    const { candidate, stable } = observeCohorts(samples, {
      wave: 0,
      now: NOW,
      silentAfterMs: 30_000,
    });
    assert.equal(candidate.applied, 2);
    assert.equal(candidate.failed, 1);
    assert.equal(stable.applied, 2);
    assert.equal(stable.failed, 1);
    assert.equal(cohortOf(samples[1]!, 0), 'candidate');
    assert.equal(cohortOf({ ...samples[1]!, wave: 1 }, 0), 'stable');
  });
});

describe('addReport', () => {
  it('accumulates trials and ignores nonsense counts', () => {
    let t = emptyTally();
    t = addReport(t, agent('a', { status: 'failed', errors: 5, requests: 10 }));
    t = addReport(t, agent('a', { status: 'ok', errors: -3, requests: Number.NaN }));
    t = addReport(t, agent('a', { status: 'ok', errors: 50, requests: 10 }));
    // Rates 0.5 and 1 (50 errors of 10 requests count as 10): a mean of 0.75 over 2 rated.
    assert.deepEqual(t, {
      reports: 3,
      failed: 1,
      errors: 15,
      requests: 20,
      rated: 2,
      errorRates: 1.5,
    });
  });
});
