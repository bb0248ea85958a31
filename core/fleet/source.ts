// The input of validation: raw files, however they were read (a directory, a git revision).

import type { Diagnostic } from '../diagnostics.ts';

export interface SourceFile {
  /** Path relative to the fleet root, with forward slashes: `releases/1.4.0.yaml`. */
  name: string;
  /** Path shown to people: relative to the working directory, or to the repository root. */
  display: string;
  bytes: Uint8Array;
}

export interface FleetSource {
  /** The fleet root as shown to people (`fleet`), used for diagnostics without a file. */
  root: string;
  files: SourceFile[];
  /** Problems found while reading (too large, symlink escaping the root, unreadable). */
  diagnostics: Diagnostic[];
}

export interface Limits {
  /** Largest fleet file accepted, in bytes. */
  maxFileBytes: number;
  /** Largest fleet in total, in bytes. */
  maxTotalBytes: number;
  maxFiles: number;
  /** Deepest nesting of mappings and sequences in a document. */
  maxDepth: number;
  /** YAML alias expansions allowed per document (guards against "billion laughs"). */
  maxAliasCount: number;
}

export const DEFAULT_LIMITS: Limits = {
  maxFileBytes: 1024 * 1024,
  maxTotalBytes: 64 * 1024 * 1024,
  maxFiles: 10_000,
  maxDepth: 64,
  maxAliasCount: 100,
};

export function isFleetFileName(name: string): boolean {
  return name.endsWith('.yaml') || name.endsWith('.yml');
}
