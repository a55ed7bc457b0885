#!/usr/bin/env bash
# The README's dry run: the whole closed loop on the simulated lab (the embedded default).
# labsim plays the robot (Modbus TCP), the furnace (Modbus RTU on a pseudo-terminal), the spin
# coater (SPN/1 on a pseudo-terminal) and the J-V and stability stations (ZeroMQ); labloopd
# runs the perovskite campaign (config/perovskite.conf: 14 initial + 10 rounds of 4 = 54
# experiments) at high simulated speed, then the Pareto front and the hypervolume are printed
# and both programs stop. Options are passed on (see scripts/campaign-dry-run.sh), e.g.
# --budget 22 for a shorter run. The planner alone, without the lab: scripts/plan-loop.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
exec scripts/campaign-dry-run.sh "$@"
