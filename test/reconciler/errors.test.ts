// The map of error codes to HTTP statuses is total and agrees with docs/errors.md and the
// wire's list of answer codes; each failure becomes the answer the map says, and a 500 never
// shows its message.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { ERROR_CODES, FleetwaveError, type ErrorCode } from '../../core/errors.ts';
import { HTTP_STATUS, answerCode, errorAnswer } from '../../reconciler/errors.ts';
import { ANSWER_CODES } from '../../wire/error.ts';

const codes = Object.keys(ERROR_CODES) as ErrorCode[];
const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');

describe('HTTP statuses of error codes', () => {
  it('gives every code a status', () => {
    assert.deepEqual(Object.keys(HTTP_STATUS).sort(), [...codes].sort());
  });

  it('shows exactly the wire answer codes (the OpenAPI Error enum) and hides the rest', () => {
    const shown = new Set(codes.map(answerCode));
    assert.deepEqual([...shown].sort(), [...ANSWER_CODES].sort());
    for (const code of codes) {
      assert.equal(answerCode(code) === code, HTTP_STATUS[code] !== 500 || code === 'INTERNAL');
    }
  });

  it('is the status docs/errors.md names for each code, and every shown code names one', () => {
    for (const code of codes) {
      const row = doc.split('\n').find((l) => l.startsWith(`| \`${code}\` |`))!;
      const named = [...row.matchAll(/\(HTTP (\d{3})/g)].map((m) => Number(m[1]));
      if (HTTP_STATUS[code] === 500 && code !== 'INTERNAL') {
        assert.deepEqual(named, [], `${code} is not an answer; its row names no status`);
      } else {
        assert.ok(named.length > 0, `${code}: docs/errors.md names no HTTP status`);
        assert.ok(named.includes(HTTP_STATUS[code]), `${code}: docs say ${named}`);
      }
    }
  });

  it('answers each code with its status, its own message below 500, none at 500', () => {
    for (const code of codes) {
      const answer = errorAnswer(new FleetwaveError(code, `secret detail of ${code}`), 'req-1');
      assert.equal(answer.status, HTTP_STATUS[code], code);
      assert.equal(answer.body.error.code, answerCode(code));
      if (answer.status === 500) {
        assert.equal(answer.internal, true);
        assert.doesNotMatch(answer.body.error.message, /secret detail/);
        assert.match(answer.body.error.message, /req-1/);
      } else {
        assert.equal(answer.internal, false);
        assert.equal(answer.body.error.message, `secret detail of ${code}`);
      }
    }
  });

  it('keeps Retry-After from the error', () => {
    const busy = new FleetwaveError('TOO_MANY_WAITERS', 'full', { details: { retryAfter: 7 } });
    assert.equal(errorAnswer(busy, 'r').retryAfter, 7);
    assert.equal(errorAnswer(new FleetwaveError('NOT_FOUND', 'x'), 'r').retryAfter, undefined);
  });
});
