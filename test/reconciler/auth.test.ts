// Agent credentials and webhook signatures (reconciler/auth.ts): tokens only the reconciler's key
// issues, in one canonical spelling, the same key on every replica, secrets compared exactly.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  deriveTokenKey,
  issueAgentToken,
  secretEquals,
  verifyAgentToken,
  verifyGithubSignature,
} from '../../reconciler/auth.ts';

describe('agent credentials', () => {
  const key = deriveTokenKey({ enrollToken: 'enroll-token-0123456789' });

  it('verifies its own tokens and names the agent', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._:@-]{0,60}$/), (id) => {
        assert.equal(verifyAgentToken(key, issueAgentToken(key, id)), id);
      }),
    );
  });

  it('rejects tokens of another key, another id, or any altered character', () => {
    const token = issueAgentToken(key, 'agent-1');
    // Verified (and so remembered) under its own key first: another key still refuses it.
    assert.equal(verifyAgentToken(key, token), 'agent-1');
    assert.equal(verifyAgentToken(key, token), 'agent-1');
    const other = deriveTokenKey({ enrollToken: 'another-token-0123456789' });
    assert.equal(verifyAgentToken(other, token), undefined);
    assert.equal(
      verifyAgentToken(
        deriveTokenKey({
          tokenSecret: 'secret-0123456789abcdef',
          enrollToken: 'enroll-token-0123456789',
        }),
        token,
      ),
      undefined,
    );
    for (let i = 0; i < token.length; i++) {
      const c = token[i] === 'A' ? 'B' : 'A';
      const altered = token.slice(0, i) + c + token.slice(i + 1);
      if (altered === token) continue;
      // Canonical tokens only: any altered character is another string, never the same token.
      assert.equal(verifyAgentToken(key, altered), undefined, `altered at ${i}: ${altered}`);
    }
    assert.equal(verifyAgentToken(key, ''), undefined);
    assert.equal(verifyAgentToken(key, 'v1..'), undefined);
  });

  it('accepts only the canonical spelling: no padding, no +/ alphabet, no stray bits', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._:@-]{0,60}$/), (id) => {
        const token = issueAgentToken(key, id);
        const [prefix, idPart, macPart] = token.split('.') as [string, string, string];
        const variants = [
          `${token}=`,
          `${prefix}.${idPart}=.${macPart}`,
          token.replace(/-/g, '+').replace(/_/g, '/'),
        ];
        // The last character of a 32-byte MAC in base64url carries 2 unused bits: flip them.
        const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
        const last = alphabet.indexOf(macPart.at(-1)!);
        for (const bits of [1, 2, 3]) {
          variants.push(`${prefix}.${idPart}.${macPart.slice(0, -1)}${alphabet[last ^ bits]}`);
        }
        for (const v of variants) {
          if (v === token) continue;
          assert.equal(verifyAgentToken(key, v), undefined, v);
        }
      }),
    );
  });

  it('derives the same key from the same enrollment token (replicas agree)', () => {
    const again = deriveTokenKey({ enrollToken: 'enroll-token-0123456789' });
    assert.equal(verifyAgentToken(again, issueAgentToken(key, 'agent-1')), 'agent-1');
  });

  it('compares secrets and webhook signatures exactly', () => {
    assert.equal(secretEquals('abc', 'abc'), true);
    assert.equal(secretEquals('abc', 'abd'), false);
    assert.equal(secretEquals('abc', 'abcd'), false);
    const body = Buffer.from('{}');
    assert.equal(verifyGithubSignature('s', body, 'sha256=' + '0'.repeat(64)), false);
    assert.equal(verifyGithubSignature('s', body, undefined), false);
  });
});
