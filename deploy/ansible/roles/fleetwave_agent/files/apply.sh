#!/bin/sh
# fleetwave --apply placeholder installed by the fleetwave_agent role: it only records which
# target arrived. Set fleetwave_agent_apply_src to your installer (it gets the target as JSON
# on stdin and FLEETWAVE_ARTIFACT, FLEETWAVE_VERSION, … in its environment; it must be
# idempotent).
set -eu
cat >/dev/null
echo "fleetwave: no installer configured; target ${FLEETWAVE_VERSION:-?} (${FLEETWAVE_ETAG:-?}) recorded only"
