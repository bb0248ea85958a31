// What the agent trusts of a reconciler's answer: a Target of exactly the shape of
// core/target/model.ts (with the artifact's signature reference when it has one) whose etag is
// the hash of its content. Pure.

import { etagOf } from '../core/target/etag.ts';
import type { Target } from '../core/target/model.ts';
import { isMapping } from '../core/target/merge.ts';

export type TargetCheck = { ok: true; target: Target } | { ok: false; problem: string };

const HEX64 = /^[0-9a-f]{64}$/;

function isHttpUrl(text: string): boolean {
  try {
    const { protocol } = new URL(text);
    return protocol === 'https:' || protocol === 'http:';
  } catch {
    return false;
  }
}

/**
 * Checks an untrusted value (parsed JSON) against the Target shape; the etag must be the
 * SHA-256 of the canonical content, so a body altered in transit or by a broken proxy is
 * refused. `etagHeader`, when given, must name the same etag.
 */
export function checkTarget(value: unknown, etagHeader?: string): TargetCheck {
  const fail = (problem: string): TargetCheck => ({ ok: false, problem });
  if (!isMapping(value)) return fail('the target is not a JSON object');
  const { etag, revision, wave, version, artifact, config, pollAfterSeconds } = value;
  if (typeof etag !== 'string' || !HEX64.test(etag)) return fail('etag is not 64 hex digits');
  if (typeof revision !== 'string' || revision === '') return fail('revision is not a string');
  if (typeof wave !== 'string' || wave === '') return fail('wave is not a string');
  if (typeof version !== 'string' || version === '') return fail('version is not a string');
  if (!isMapping(artifact)) return fail('artifact is not an object');
  if (typeof artifact.url !== 'string') return fail('artifact.url is not a string');
  let url: URL;
  try {
    url = new URL(artifact.url);
  } catch {
    return fail(`artifact.url "${artifact.url}" is not a URL`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    return fail(`artifact.url must be http(s), not ${url.protocol}`);
  if (typeof artifact.sha256 !== 'string' || !HEX64.test(artifact.sha256.toLowerCase()))
    return fail('artifact.sha256 is not 64 hex digits');
  const signature = artifact.signature;
  if (signature !== undefined) {
    if (!isMapping(signature)) return fail('artifact.signature is not an object');
    if (typeof signature.url !== 'string' || !isHttpUrl(signature.url))
      return fail('artifact.signature.url is not an http(s) URL');
    if (typeof signature.keyRef !== 'string' || signature.keyRef === '')
      return fail('artifact.signature.keyRef is not a key name');
  }
  if (!isMapping(config)) return fail('config is not an object');
  if (
    typeof pollAfterSeconds !== 'number' ||
    !Number.isInteger(pollAfterSeconds) ||
    pollAfterSeconds < 1 ||
    pollAfterSeconds > 86_400
  )
    return fail('pollAfterSeconds is not a whole number of seconds from 1 to 86400');
  const target: Target = {
    etag,
    revision,
    wave,
    version,
    artifact: {
      url: artifact.url,
      sha256: artifact.sha256.toLowerCase(),
      // The two known keys only, as everywhere: the etag is checked over what is kept.
      ...(signature === undefined
        ? {}
        : { signature: { url: signature.url as string, keyRef: signature.keyRef as string } }),
    },
    config,
    pollAfterSeconds,
  };
  const computed = etagOf(target);
  if (computed !== etag)
    return fail(
      `etag ${etag.slice(0, 12)}… is not the hash of the content (${computed.slice(0, 12)}…)`,
    );
  if (etagHeader !== undefined && etagHeader !== etag)
    return fail(`the ETag header "${etagHeader}" names another target than the body`);
  return { ok: true, target };
}

/** The etag of an `ETag: "…"` header (strong or weak), or undefined. */
export function etagHeader(header: unknown): string | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  if (typeof value !== 'string') return undefined;
  const m = /^(?:W\/)?"([^"]*)"$/.exec(value.trim());
  return m ? m[1] : undefined;
}
