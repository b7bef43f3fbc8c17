#!/bin/bash
# Holding z (docs/RL_DESIGN.md "Holding z for several steps"; docs/RESULTS.md, fifteenth
# session), grasp, 50k env steps each, three seeds at a time on 2 cores:
#   awac-mc-h5      the policy picks z every 5 env steps and holds it, one update per decision
#                   (10k updates); the fifteenth session stopped it at 20k
#   awac-mc-h5-u1   the same with one update per env step (50k updates); stopped at 20k
#   awac-mc-h5-a01  one update per decision, alpha starting at 0.1 (7-16 min per run)
# A run that holds z cannot be exported (`parrot export-policy` refuses it), so the figures are
# the runs' own evaluations: the policy's mean on the 100 evaluation scenes (4e9..) in
# OUT/*/metrics.jsonl. Rerunning resumes every run and skips finished ones.
#
#   experiments/rl_hold.sh [OUT=runs/rl_hold] [SETTINGS="awac-mc-h5-a01 awac-mc-h5 awac-mc-h5-u1"]
set -euo pipefail
OUT=${1:-runs/rl_hold}
SETTINGS=${2:-awac-mc-h5-a01 awac-mc-h5 awac-mc-h5-u1}
source "$(dirname "$0")/common.sh"
mkdir -p "$OUT"

for setting in $SETTINGS; do
  for seed in 0 1 2; do rl_train grasp "$seed" "$setting" "$setting" & done
  wait
done
