import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { formatDuration, parseDuration } from '../../../core/fleet/duration.ts';

describe('parseDuration', () => {
  const valid: Array<[string, number]> = [
    ['0s', 0],
    ['500ms', 500],
    ['90s', 90_000],
    ['15m', 900_000],
    ['2h', 7_200_000],
    ['1d', 86_400_000],
    ['1h30m', 5_400_000],
    ['1.5h', 5_400_000],
    ['1m30s250ms', 90_250],
  ];
  for (const [text, ms] of valid)
    it(`${text} is ${ms} ms`, () => assert.equal(parseDuration(text), ms));

  const invalid = [
    '',
    '15',
    'm',
    '15 m',
    '15M',
    '1hour',
    '-5m',
    '1h 30m',
    ' 1h',
    '1h ',
    '.5h',
    '5.m',
    '1w',
  ];
  for (const text of invalid)
    it(`${JSON.stringify(text)} is not a duration`, () =>
      assert.equal(parseDuration(text), undefined));
});

describe('formatDuration', () => {
  const cases: Array<[number, string]> = [
    [0, '0s'],
    [250, '250ms'],
    [1500, '1500ms'],
    [90_000, '90s'],
    [900_000, '15m'],
    [5_400_000, '90m'],
    [7_200_000, '2h'],
    [86_400_000, '1d'],
    [90_000_000, '25h'],
  ];
  for (const [ms, text] of cases)
    it(`${ms} ms is ${text}`, () => assert.equal(formatDuration(ms), text));

  it('reads back what it writes', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 10 * 365 * 86_400_000 }), (ms) => {
        assert.equal(parseDuration(formatDuration(ms)), ms);
      }),
    );
  });
});
