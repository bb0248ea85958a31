// What the routes share: one object built by buildServer, passed to each route plugin.

import type { Registry } from 'prom-client';
import type { AgentRegistry } from './agents.ts';
import type { ServeConfig } from './config.ts';
import type { LongPoll } from './longpoll.ts';
import type { Metrics } from './metrics.ts';
import type { Mirror } from '../rollout/mirror.ts';
import type { FleetSync } from './sync.ts';
import type { Reports } from './reports.ts';
import type { Targets } from './targets.ts';
import type { CheckinWaiter } from './agent-api.ts';

export interface Reconciler {
  config: ServeConfig;
  now: () => number;
  random: () => number;
  registry: Registry;
  agents: AgentRegistry;
  /** Agent reports on their way to the store, and the fleet-wide reads of it. */
  reports: Reports;
  longpoll: LongPoll<CheckinWaiter>;
  metrics: Metrics;
  mirror: Mirror;
  sync: FleetSync;
  /** The targets of the rollout being served; undefined until the first valid state. */
  targets: Targets | undefined;
  /** Key of the agent credentials (see auth.ts). */
  tokenKey: Buffer;
}
