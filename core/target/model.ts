// What an agent is to the core (an id and its labels) and what it receives (its target).

import type { Labels } from '../fleet/selector.ts';

export type { Labels };

export interface Agent {
  readonly id: string;
  readonly labels: Labels;
}

/** Where an agent stands in the rollout: its bucket and the first wave that admits it. */
export interface Placement {
  /** `hash(salt, id) mod 10000`; see placement.ts. */
  readonly bucket: number;
  /** Index into `spec.waves`. */
  readonly index: number;
  readonly wave: string;
}

/** Where the artifact's signature is and the name of the trusted key that must check it. */
export interface TargetSignature {
  readonly url: string;
  /** A name the agent knows a public key by (`--trusted-key NAME=PATH`); never a key. */
  readonly keyRef: string;
}

export interface TargetArtifact {
  readonly url: string;
  readonly sha256: string;
  /** Present when the Release signs this artifact (core/fleet/signature.ts). */
  readonly signature?: TargetSignature;
}

/** What an agent applies. The etag is the hash of exactly this (see etag.ts). */
export interface Content {
  readonly version: string;
  readonly artifact: TargetArtifact;
  readonly config: Readonly<Record<string, unknown>>;
  readonly pollAfterSeconds: number;
}

/**
 * An agent's target (DESIGN §5). Targets and their configs are frozen: agents with the same
 * content share one object.
 */
export interface Target extends Content {
  readonly etag: string;
  /** The commit the target was rendered from (`workdir` for a directory on disk). */
  readonly revision: string;
  readonly wave: string;
}

/**
 * Why an agent gets no target. Never a half-rendered config: the agent keeps what it has and
 * the reconciler counts the error by its code.
 */
export type RenderError =
  | {
      readonly code: 'missing-label';
      /** Every label the agent lacks, sorted. */
      readonly labels: readonly string[];
      readonly message: string;
    }
  | {
      readonly code: 'no-artifact';
      readonly os: string;
      readonly arch: string;
      readonly message: string;
    };

export type RenderErrorCode = RenderError['code'];

export type RenderResult =
  | { readonly ok: true; readonly wave: string; readonly target: Target }
  | { readonly ok: false; readonly wave: string; readonly error: RenderError };
