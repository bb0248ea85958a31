// The demo's fleet: a copy of the example fleet in fleet/, with a rollout policy sized for a
// thousand simulated agents and seconds instead of minutes, so the whole story plays in about
// two minutes. Edits go through yaml's Document API, so comments and layout survive.

import { cp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseDocument } from 'yaml';

export const EXAMPLE_FLEET = fileURLToPath(new URL('../fleet/', import.meta.url));

/** The demo's waves; `minAgents` scales with the fleet so a small demo still reaches a verdict. */
function demoWaves(agents: number) {
  // About 10% of the simulated agents are internal, half of those are in the canary.
  const minAgents = Math.max(5, Math.min(20, Math.floor(agents * 0.1 * 0.5 * 0.6)));
  return [
    {
      name: 'canary',
      selector: { matchLabels: { env: 'internal' } },
      percent: 50,
      bake: '5s',
      gates: {
        minAgents,
        minAppliedRatio: 0.8,
        maxFailedRatio: 0.1,
        compareToStable: { metric: 'failedRatio', tolerance: 0.02 },
      },
    },
    {
      name: 'early',
      selector: { matchLabels: { env: 'prod', region: 'eu-west-1' } },
      percent: 40,
      bake: '5s',
      gates: { minAgents, minAppliedRatio: 0.8, maxFailedRatio: 0.05 },
    },
    {
      name: 'europe',
      selector: {
        matchExpressions: [
          { key: 'region', operator: 'In', values: ['eu-west-1', 'eu-central-1'] },
        ],
      },
      percent: 50,
      bake: '5s',
      gates: { minAgents, minAppliedRatio: 0.8, maxFailedRatio: 0.05 },
    },
    {
      name: 'everyone',
      percent: 100,
      bake: '5s',
      gates: { minAppliedRatio: 0.8, maxFailedRatio: 0.05 },
    },
  ];
}

/** Copies the example fleet into `dir/fleet` with the demo's policy for `agents` agents. */
export async function writeDemoFleet(dir: string, agents: number): Promise<void> {
  const fleetDir = join(dir, 'fleet');
  await cp(EXAMPLE_FLEET, fleetDir, { recursive: true });
  const path = join(fleetDir, 'fleet.yaml');
  const doc = parseDocument(await readFile(path, 'utf8'));
  doc.setIn(['spec', 'pollIntervalSeconds'], 5);
  doc.setIn(['spec', 'waves'], doc.createNode(demoWaves(agents)));
  doc.setIn(['spec', 'rollback', 'revert'], 'push');
  await writeFile(path, doc.toString());
}

/** Rewrites one scalar of a fleet file, as a person editing it would. */
export async function editFleetFile(
  dir: string,
  file: string,
  path: Array<string | number>,
  value: unknown,
): Promise<void> {
  const full = join(dir, 'fleet', file);
  const doc = parseDocument(await readFile(full, 'utf8'));
  doc.setIn(path, value);
  await writeFile(full, doc.toString());
}
