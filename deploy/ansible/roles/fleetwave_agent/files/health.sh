#!/bin/sh
# fleetwave --health placeholder installed by the fleetwave_agent role: always ok. Set
# fleetwave_agent_health_src to a real check (exit 0 ok, 1 degraded, anything else failed).
echo '{"message": "no health check configured"}'
