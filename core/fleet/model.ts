// The typed fleet: what a valid fleet directory or revision means once every check has passed.

export const API_VERSION = 'fleetwave.dev/v1';
export const KINDS = ['Fleet', 'Release', 'ConfigLayer'] as const;
export type Kind = (typeof KINDS)[number];

export interface LabelSelectorRequirement {
  key: string;
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  values?: string[];
}

export interface Selector {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelSelectorRequirement[];
}

export interface PrometheusGate {
  name: string;
  query: string;
  min?: number;
  max?: number;
  timeout?: string;
}

export interface CompareToStableGate {
  metric: 'failedRatio' | 'errorRate';
  /** How much worse than stable the candidate may be, as an absolute difference. */
  tolerance: number;
  /** Overall false-alarm budget across all evaluations of this gate, e.g. 0.01. */
  alpha?: number;
}

export interface Gates {
  minAgents?: number;
  minAppliedRatio?: number;
  applyDeadline?: string;
  maxFailedRatio?: number;
  maxErrorRate?: number;
  maxSilentRatio?: number;
  silentAfter?: string;
  compareToStable?: CompareToStableGate;
  prometheus?: PrometheusGate[];
  /** How long a gate may stay inconclusive before it counts as failed. */
  failAfter?: string;
}

export interface Wave {
  name: string;
  selector?: Selector;
  percent: number;
  bake: string;
  approval?: 'auto' | 'manual';
  gates?: Gates;
}

export interface Rollback {
  revert: 'push' | 'pull-request';
}

export interface FleetSpec {
  version: string;
  /** Salt of the wave-membership hash; defaults to metadata.name. Changing it reshuffles every wave. */
  salt?: string;
  pollIntervalSeconds: number;
  waves: Wave[];
  rollback?: Rollback;
}

/** Where a signature file is and the name of the trusted key that checks it (signature.ts). */
export interface SignatureRef {
  url: string;
  keyRef?: string;
}

export interface Artifact {
  os: string;
  arch: string;
  url: string;
  sha256: string;
  /** This artifact's signature; wins over the release's. */
  signature?: SignatureRef;
}

export interface ReleaseSpec {
  version: string;
  artifacts: Artifact[];
  /** Every artifact's signature, its URL a template (`${artifact.url}.sig`). */
  signature?: SignatureRef;
  notes?: string;
}

export interface SecretRef {
  secretRef: { provider: 'env' | 'file' | 'vault'; key: string };
}

export interface ConfigLayerSpec {
  selector?: Selector;
  priority: number;
  values: Record<string, unknown>;
}

export interface Metadata {
  name: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/** Where a document came from: its file (as shown to people) and its place in that file. */
export interface DocumentOrigin {
  file: string;
  /** Path relative to the fleet root, used for ordering (ConfigLayer ties break on it). */
  name: string;
  index: number;
}

export interface Document<K extends Kind, S> {
  apiVersion: typeof API_VERSION;
  kind: K;
  metadata: Metadata;
  spec: S;
  origin: DocumentOrigin;
}

export type FleetDocument = Document<'Fleet', FleetSpec>;
export type ReleaseDocument = Document<'Release', ReleaseSpec>;
export type ConfigLayerDocument = Document<'ConfigLayer', ConfigLayerSpec>;
export type AnyDocument = FleetDocument | ReleaseDocument | ConfigLayerDocument;

export interface FleetModel {
  fleet: FleetDocument;
  releases: ReleaseDocument[];
  /** In merge order: lower priority first, ties by file name then position in file. */
  layers: ConfigLayerDocument[];
}
