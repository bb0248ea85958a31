import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { didYouMean, editDistance } from '../../../core/fleet/suggest.ts';

describe('editDistance', () => {
  const cases: Array<[string, string, number]> = [
    ['', '', 0],
    ['abc', '', 3],
    ['', 'abc', 3],
    ['percent', 'percent', 0],
    ['percnt', 'percent', 1],
    ['percnet', 'percent', 1],
    ['evn', 'env', 1],
    ['kitten', 'sitting', 3],
    ['flaw', 'lawn', 2],
    ['sha265', 'sha256', 1],
  ];
  for (const [a, b, d] of cases)
    it(`${JSON.stringify(a)} → ${JSON.stringify(b)} is ${d}`, () =>
      assert.equal(editDistance(a, b), d));

  it('is symmetric, zero only for equal strings, and at most the longer length', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 12 }), fc.string({ maxLength: 12 }), (a, b) => {
        const d = editDistance(a, b);
        assert.equal(d, editDistance(b, a));
        assert.equal(d === 0, a === b);
        assert.ok(d <= Math.max(a.length, b.length));
        assert.ok(d >= Math.abs(a.length - b.length));
      }),
    );
  });
});

describe('didYouMean', () => {
  const waveKeys = ['name', 'selector', 'percent', 'bake', 'approval', 'gates'];
  const cases: Array<[string, readonly string[], string | undefined]> = [
    ['percnt', waveKeys, 'percent'],
    ['gate', waveKeys, 'gates'],
    ['Percent', waveKeys, 'percent'],
    ['region', waveKeys, undefined],
    ['bake', waveKeys, undefined],
    ['fleet', ['Fleet', 'Release', 'ConfigLayer'], 'Fleet'],
    ['Relase', ['Fleet', 'Release', 'ConfigLayer'], 'Release'],
    ['configlayer', ['Fleet', 'Release', 'ConfigLayer'], 'ConfigLayer'],
    ['pollInterval', ['version', 'pollIntervalSeconds', 'waves'], 'pollIntervalSeconds'],
    ['timeouts', ['timeout', 'timeoutSeconds'], 'timeout'],
    ['evn', ['env', 'file', 'vault'], 'env'],
    ['aws', ['env', 'file', 'vault'], undefined],
    ['ab', ['xy'], undefined],
    ['max', ['maxErrorRate'], undefined],
    ['1.8.1', ['1.7.2', '1.8.0'], '1.8.0'],
    ['2.0.0', ['1.7.2', '1.8.0'], undefined],
    ['anything', [], undefined],
  ];
  for (const [input, candidates, want] of cases) {
    it(`${JSON.stringify(input)} → ${JSON.stringify(want)}`, () =>
      assert.equal(didYouMean(input, candidates), want));
  }

  it('prefers a real typo to a name cut short', () => {
    assert.equal(didYouMean('minAgent', ['minAgentsTotal', 'minAgents']), 'minAgents');
  });
});
