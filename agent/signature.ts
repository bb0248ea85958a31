// Release signatures, checked by the agent before an artifact may be used. The fleet only names
// a key (`signature.keyRef`); the public keys live with the agent (`--trusted-key NAME=PATH`),
// so whoever can write the fleet repository cannot make agents trust a key of their own.
//
// Two kinds of key, each as a PEM public key:
//
// - ECDSA (cosign's key pairs are P-256): the signature is over the artifact's bytes with
//   SHA-256, DER-encoded, as `cosign sign-blob --key cosign.key FILE` prints it (base64) and
//   `openssl dgst -sha256 -sign key.pem FILE` writes it (raw). `cosign verify-blob --key
//   cosign.pub --signature FILE.sig FILE` accepts exactly what this accepts. The artifact is
//   streamed from disk, whatever its size.
// - Ed25519 (`openssl genpkey -algorithm ed25519`): plain Ed25519 over the artifact's bytes, as
//   `openssl pkeyutl -sign -rawin -inkey key.pem -in FILE` writes it. Ed25519 hashes the whole
//   message twice, so it is verified from memory: artifacts above 256 MiB are refused (sign
//   those with an ECDSA key). Signing a digest instead would work at any size, but no common
//   tool would then verify the same signature.
//
// A signature file holds the signature as base64 (whitespace ignored) or as raw bytes: a file
// that is all base64 text is decoded, anything else is taken as is. It is at most 16 KiB.
//
// Checking goes in two steps: `checkSignaturePolicy` before the download (an unsigned artifact
// under --require-signatures, a key this agent does not trust: no need to fetch anything), and
// `verifyArtifactSignature` on the artifact as downloaded and hash-checked. Every refusal is
// ARTIFACT_SIGNATURE_INVALID, except a signature file that could not be fetched for a passing
// reason (no connection, timeout, 5xx): that is ARTIFACT_DOWNLOAD_FAILED, like the artifact.

import { createPublicKey, createVerify, verify, type KeyObject } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import type { Dispatcher } from 'undici';
import type { TargetArtifact, TargetSignature } from '../core/target/model.ts';
import { DEFAULT_MAX_REDIRECTS, openDownload, type DownloadFailure } from './artifact.ts';
import { AgentError, describe } from './errors.ts';

export const DEFAULT_MAX_SIGNATURE_BYTES = 16 * 1024;
/** Ed25519 needs the whole artifact in memory: above this, it is refused. */
export const DEFAULT_MAX_ED25519_BYTES = 256 * 1024 ** 2;

/** Public keys by the names the fleet's `keyRef`s use. */
export type TrustedKeys = ReadonlyMap<string, KeyObject>;

const KEY_TYPES = new Set(['ec', 'ed25519']);

/**
 * A trusted key from a PEM public key (SPKI, `-----BEGIN PUBLIC KEY-----`, as cosign.pub) or a
 * public KeyObject. Throws (a plain Error, with the reason) for anything else, a private key
 * above all: the signing key never belongs on the agents.
 */
export function trustedKey(key: KeyObject | string | Buffer): KeyObject {
  let object: KeyObject;
  if (typeof key === 'string' || Buffer.isBuffer(key)) {
    const text = key.toString();
    if (/-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/.test(text))
      throw new Error('this is a private key: give the agent the public key only (cosign.pub)');
    try {
      object = createPublicKey(text);
    } catch (e) {
      throw new Error(`not a PEM public key (${describe(e)})`, { cause: e });
    }
  } else {
    if (key.type !== 'public')
      throw new Error(`this is a ${key.type} key: give the agent the public key only`);
    object = key;
  }
  const type = object.asymmetricKeyType ?? 'unknown';
  if (!KEY_TYPES.has(type))
    throw new Error(`a ${type} key: fleetwave verifies ECDSA (cosign) and Ed25519 signatures`);
  return object;
}

/** AgentOptions.trustedKeys as a map of checked keys; throws naming the key that is wrong. */
export function trustedKeysOf(
  keys: Readonly<Record<string, KeyObject | string>> | undefined,
): Map<string, KeyObject> {
  const out = new Map<string, KeyObject>();
  for (const [name, key] of Object.entries(keys ?? {})) {
    if (name === '') throw new Error('a trusted key needs a name');
    try {
      out.set(name, trustedKey(key));
    } catch (e) {
      throw new Error(`trusted key "${name}": ${describe(e)}`, { cause: e });
    }
  }
  return out;
}

function invalid(message: string, cause?: unknown): AgentError {
  return new AgentError(
    'ARTIFACT_SIGNATURE_INVALID',
    message,
    cause === undefined ? {} : { cause },
  );
}

/** The key a signature names, or the refusal: checked before anything is downloaded. */
function keyFor(signature: TargetSignature, keys: TrustedKeys): KeyObject {
  const key = keys.get(signature.keyRef);
  if (key) return key;
  const known = [...keys.keys()].sort();
  throw invalid(
    `the artifact is signed with the key "${signature.keyRef}", which this agent does not trust ` +
      (known.length > 0
        ? `(it trusts ${known.map((k) => `"${k}"`).join(', ')})`
        : `(it trusts no key: start it with --trusted-key ${signature.keyRef}=PATH)`),
  );
}

/**
 * What can be refused before the artifact is fetched: an unsigned artifact when signatures are
 * required, and a signature by a key this agent does not trust.
 */
export function checkSignaturePolicy(
  artifact: TargetArtifact,
  keys: TrustedKeys,
  requireSignatures: boolean,
): void {
  if (artifact.signature) keyFor(artifact.signature, keys);
  else if (requireSignatures)
    throw invalid(
      `the artifact ${artifact.url} is not signed, and this agent requires signatures (--require-signatures): sign the Release (spec.signature)`,
    );
}

/** A signature file's bytes as the signature: base64 text is decoded, anything else is raw. */
export function decodeSignature(bytes: Buffer): Buffer {
  const text = bytes.toString('latin1').replace(/[\t\n\r ]+/g, '');
  if (text.length > 0 && text.length % 4 === 0 && /^[A-Za-z0-9+/]+={0,2}$/.test(text))
    return Buffer.from(text, 'base64');
  return bytes;
}

export interface VerifyOptions {
  signature: TargetSignature;
  /** The artifact as downloaded, its sha256 already checked. */
  artifactPath: string;
  keys: TrustedKeys;
  dispatcher?: Dispatcher | undefined;
  maxRedirects?: number | undefined;
  /** Headers and body idle timeouts of the signature download, in ms. */
  timeoutMs?: number | undefined;
  signal?: AbortSignal | undefined;
  maxSignatureBytes?: number | undefined;
  maxEd25519Bytes?: number | undefined;
}

/** Downloads the signature file (bounded, with the artifact's rules) and returns its bytes. */
async function fetchSignature(options: VerifyOptions): Promise<Buffer> {
  const { url } = options.signature;
  const maxBytes = options.maxSignatureBytes ?? DEFAULT_MAX_SIGNATURE_BYTES;
  const failed: DownloadFailure = (message, transient, cause) =>
    transient
      ? new AgentError('ARTIFACT_DOWNLOAD_FAILED', `signature ${url}: ${message}`, {
          cause,
          transient: true,
        })
      : invalid(`signature ${url}: ${message}`, cause);
  const body = await openDownload(
    url,
    {
      dispatcher: options.dispatcher,
      maxBytes,
      maxRedirects: options.maxRedirects ?? DEFAULT_MAX_REDIRECTS,
      timeoutMs: options.timeoutMs ?? 30_000,
      signal: options.signal,
    },
    failed,
  );
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of body) {
      const buffer = chunk as Buffer;
      size += buffer.length;
      if (size > maxBytes) throw failed(`more than the limit of ${maxBytes} bytes`, false);
      chunks.push(buffer);
    }
  } catch (e) {
    body.destroy();
    throw e instanceof AgentError ? e : failed(describe(e), true, e);
  }
  return Buffer.concat(chunks);
}

/** Whether `sig` is a signature of the file's bytes by `key` (ECDSA streams; Ed25519 reads). */
async function verifies(
  path: string,
  key: KeyObject,
  sig: Buffer,
  maxEd25519Bytes: number,
): Promise<boolean> {
  if (key.asymmetricKeyType === 'ed25519') {
    const size = (await stat(path)).size;
    if (size > maxEd25519Bytes)
      throw invalid(
        `the artifact is ${size} bytes, more than the ${maxEd25519Bytes} an Ed25519 signature is checked for (it needs the whole artifact in memory): sign large artifacts with an ECDSA key (cosign)`,
      );
    return verify(null, await readFile(path), key, sig);
  }
  const verifier = createVerify('sha256');
  for await (const chunk of createReadStream(path)) verifier.update(chunk as Buffer);
  return verifier.verify({ key, dsaEncoding: 'der' }, sig);
}

/**
 * Verifies the artifact's signature with the trusted key it names; throws AgentError
 * (ARTIFACT_SIGNATURE_INVALID, or ARTIFACT_DOWNLOAD_FAILED for a passing download failure).
 */
export async function verifyArtifactSignature(options: VerifyOptions): Promise<void> {
  const { signature } = options;
  const key = keyFor(signature, options.keys);
  const bytes = await fetchSignature(options);
  if (bytes.length === 0) throw invalid(`signature ${signature.url}: the file is empty`);
  const sig = decodeSignature(bytes);
  let ok: boolean;
  try {
    ok = await verifies(
      options.artifactPath,
      key,
      sig,
      options.maxEd25519Bytes ?? DEFAULT_MAX_ED25519_BYTES,
    );
  } catch (e) {
    if (e instanceof AgentError) throw e;
    // OpenSSL refuses what is not a signature at all (bad DER, a wrong length).
    throw invalid(`signature ${signature.url}: not a signature (${describe(e)})`, e);
  }
  if (!ok)
    throw invalid(
      `signature ${signature.url} does not verify with the trusted key "${signature.keyRef}" (${key.asymmetricKeyType}): the artifact was not signed with that key, or the signature is damaged`,
    );
}
