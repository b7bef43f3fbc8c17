#!/bin/bash
# One RL setting of the grid on grasp, seeds 0-2, 50k env steps each: seeds 0 and 1 side by side
# (one core each on 2 cores), then seed 2; then each run exported and evaluated on 200 held-out
# scenes from seed 20000. Rerunning resumes every run and skips finished evaluations.
#
#   experiments/rl_seeds.sh OUT SETTING      e.g. experiments/rl_seeds.sh runs/rl_qmean awac-mc-qmean
set -euo pipefail
OUT=${1:?OUT}
SETTING=${2:?SETTING}
source "$(dirname "$0")/common.sh"
mkdir -p "$OUT"

rl_train grasp 0 "$SETTING" "$SETTING" & rl_train grasp 1 "$SETTING" "$SETTING" & wait
rl_train grasp 2 "$SETTING" "$SETTING"
for seed in 0 1 2; do rl_evaluate grasp "$seed" "$SETTING"; done
