// Credentials. An agent's token is stateless: `v1.<base64url(id)>.<base64url(mac)>` with
// mac = HMAC-SHA256(key, "fleetwave agent v1\0" + id), so every replica that shares the key
// verifies it without a database. The key is --token-secret, or HKDF-SHA256 of the enrollment
// token (then replicas sharing the enrollment token agree, and rotating it revokes every agent
// credential). Every comparison is constant-time.

import {
  createHmac,
  createSecretKey,
  hkdfSync,
  randomBytes,
  timingSafeEqual,
  type KeyObject,
} from 'node:crypto';
import { isAgentId } from '../wire/agent.ts';

const PREFIX = 'v1';
const MAC_CONTEXT = 'fleetwave agent v1\0';

export function deriveTokenKey(options: { tokenSecret?: string; enrollToken?: string }): Buffer {
  const material = options.tokenSecret ?? options.enrollToken;
  // No secret at all (only with --insecure-local-demo): credentials live as long as the process.
  if (material === undefined) return randomBytes(32);
  return Buffer.from(
    hkdfSync('sha256', material, 'fleetwave', 'agent-credential-v1', 32) as ArrayBuffer,
  );
}

// createHmac imports a raw Buffer key anew on every call, which costs several times the MAC
// itself; every check-in verifies a token, so each key is imported once.
const imported = new WeakMap<Buffer, KeyObject>();

function mac(key: Buffer, id: string): Buffer {
  let keyObject = imported.get(key);
  if (!keyObject) {
    keyObject = createSecretKey(key);
    imported.set(key, keyObject);
  }
  return createHmac('sha256', keyObject).update(MAC_CONTEXT).update(id, 'utf8').digest();
}

// Each check-in verifies a token. A token that verified is kept (per key, at most VERIFIED
// tokens) with its id, so the agent's next check-ins cost one lookup instead of splitting,
// decoding and comparing it again. A token is valid or not for good under one key (it has no
// expiry; rotating the key is a new key, hence a new cache), so a hit answers as the full check
// would. A miss, whatever the string, takes the full constant-time path: the lookup only ever
// finds a token that was presented whole and verified.
const VERIFIED = 200_000;
const verified = new WeakMap<Buffer, Map<string, string>>();

export function issueAgentToken(key: Buffer, id: string): string {
  return `${PREFIX}.${Buffer.from(id, 'utf8').toString('base64url')}.${mac(key, id).toString('base64url')}`;
}

/** The agent id a token was issued to, or undefined when it is not a valid token. */
export function verifyAgentToken(key: Buffer, token: string): string | undefined {
  let tokens = verified.get(key);
  if (!tokens) {
    tokens = new Map();
    verified.set(key, tokens);
  }
  const known = tokens.get(token);
  if (known !== undefined) return known;
  const id = verifyUncached(key, token);
  if (id !== undefined) {
    if (tokens.size >= VERIFIED) tokens.clear();
    tokens.set(token, id);
  }
  return id;
}

function verifyUncached(key: Buffer, token: string): string | undefined {
  if (token.length > 1024) return undefined;
  const parts = token.split('.');
  if (parts.length !== 3 || parts[0] !== PREFIX) return undefined;
  // Node's decoder is lenient (padding, the +/ alphabet, stray low bits and invalid UTF-8 all
  // decode): a token counts only in the one spelling issueAgentToken writes, so one credential
  // is one string, whatever logs, caches or rate limits key on.
  const id = Buffer.from(parts[1]!, 'base64url').toString('utf8');
  if (!isAgentId(id) || Buffer.from(id, 'utf8').toString('base64url') !== parts[1]) {
    return undefined;
  }
  const given = Buffer.from(parts[2]!, 'base64url');
  if (given.toString('base64url') !== parts[2]) return undefined;
  const want = mac(key, id);
  if (given.length !== want.length || !timingSafeEqual(given, want)) return undefined;
  return id;
}

/** Constant-time equality of a presented secret with the expected one (any lengths). */
export function secretEquals(given: string, expected: string): boolean {
  // Compare digests so that neither length nor content leaks through timing.
  const a = createHmac('sha256', 'fleetwave-compare').update(given).digest();
  const b = createHmac('sha256', 'fleetwave-compare').update(expected).digest();
  return timingSafeEqual(a, b);
}

/** The token of an `Authorization: Bearer …` header, or undefined. */
export function bearer(header: string | string[] | undefined): string | undefined {
  if (typeof header !== 'string') return undefined;
  const m = /^Bearer[ ]+([\x21-\x7e]+)\s*$/i.exec(header);
  return m?.[1];
}

/** GitHub's `X-Hub-Signature-256: sha256=<hex>` over the raw body, checked in constant time. */
export function verifyGithubSignature(secret: string, body: Buffer, header: unknown): boolean {
  if (typeof header !== 'string' || !/^sha256=[0-9a-f]{64}$/i.test(header)) return false;
  const given = Buffer.from(header.slice(7), 'hex');
  const want = createHmac('sha256', secret).update(body).digest();
  return timingSafeEqual(given, want);
}
