// The etag of a target: SHA-256 (hex) of the canonical JSON of its content, i.e. of
// `{artifact, config, pollAfterSeconds, version}` with every mapping's keys sorted by UTF-16
// code units and no whitespace.
//
// In: everything the agent acts on, the artifact's signature reference (url, keyRef) with it
// when the Release has one. pollAfterSeconds is in because an agent that sends the
// current etag gets a 304, so a changed poll interval behind an unchanged etag would never
// reach it. Out: `revision` and `wave`, which say where the target came from, not what it is.
// A commit that leaves an agent's content alone must not look like a change to that agent (no
// needless re-apply, and gates count it as already running the candidate), and neither must a
// wave move caused by raising a percentage.
//
// The canonical JSON is what the agent receives: two contents with the same JSON text (as
// JSON.stringify prints it, e.g. -0 as 0) are the same content and get the same etag.

import { hash } from 'node:crypto';
import type { Content } from './model.ts';

/** JSON with sorted keys and no whitespace; equal for values that print the same. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out += ',';
      const item = value[i];
      // As JSON.stringify does: holes, undefined and functions in lists print as null.
      out += item === undefined || typeof item === 'function' ? 'null' : canonicalJson(item);
    }
    return out + ']';
  }
  if (typeof value === 'object' && value !== null) {
    const keys = Object.keys(value).sort();
    let out = '{';
    let first = true;
    for (const key of keys) {
      const item = (value as Record<string, unknown>)[key];
      if (item === undefined || typeof item === 'function') continue;
      out += `${first ? '' : ','}${JSON.stringify(key)}:${canonicalJson(item)}`;
      first = false;
    }
    return out + '}';
  }
  return JSON.stringify(value) ?? 'null';
}

/** The canonical JSON of a content: its own four keys in sorted order. */
export function canonicalContent(content: Content): string {
  return (
    `{"artifact":${canonicalJson(content.artifact)},"config":${canonicalJson(content.config)},` +
    `"pollAfterSeconds":${canonicalJson(content.pollAfterSeconds)},"version":${canonicalJson(content.version)}}`
  );
}

export function etagOfCanonical(canonical: string): string {
  return hash('sha256', canonical, 'hex');
}

export function etagOf(content: Content): string {
  return etagOfCanonical(canonicalContent(content));
}
