// Whether two fleets give every agent the same target: the rendering inputs compared, so a
// comment-only change or the revert of a rejected commit is known to change no agent without
// rendering a single target. Waves, gates and the salt place agents; they change no content.

import type { FleetModel } from '../fleet/model.ts';
import { canonicalJson } from './etag.ts';

function renderingInputs(model: FleetModel): unknown {
  const spec = model.fleet.spec;
  return {
    version: spec.version,
    pollIntervalSeconds: spec.pollIntervalSeconds,
    release: model.releases.find((r) => r.spec.version === spec.version)?.spec ?? null,
    // In merge order, which is what the renderer follows.
    layers: model.layers.map((l) => ({ selector: l.spec.selector ?? null, values: l.spec.values })),
  };
}

/** True only when every agent's target content (and so its etag) is the same under both. */
export function sameTargets(a: FleetModel, b: FleetModel): boolean {
  return canonicalJson(renderingInputs(a)) === canonicalJson(renderingInputs(b));
}
