#!/bin/bash
# The AWAC policy step of RL in z (docs/RL_DESIGN.md "The AWAC step"; docs/RESULTS.md, fourteenth
# session), grasp, 50k steps each, three runs at a time on 2 cores:
#   awac-mc-v8      seeds 0-2: the advantage's baseline from 8 policy samples (lambda 0.1)
#   awac-mc-l03-v8  seeds 0-2: the same with lambda 0.03 (the fourteenth session stopped them at 30k)
# then exports every run and evaluates it on 200 held-out scenes from seed 20000, and refits a
# fresh policy on the replay and critics of experiments/rl_time_limit.sh's grasp seed 2
# (runs/rl_mc) with lambda 0.1 / 0.03 / 0.01, each evaluated on 100 scenes from seed 20000.
# About 2 h on 2 cores; rerunning resumes every run and skips finished ones.
#
#   experiments/rl_awac_step.sh [OUT=runs/rl_v] [MC_RUNS=runs/rl_mc]
set -euo pipefail
OUT=${1:-runs/rl_v}
MC_RUNS=${2:-runs/rl_mc}
source "$(dirname "$0")/common.sh"
mkdir -p "$OUT"

for setting in awac-mc-v8 awac-mc-l03-v8; do
  for seed in 0 1 2; do rl_train grasp "$seed" "$setting" "$setting" & done
  wait
  for seed in 0 1 2; do rl_evaluate grasp "$seed" "$setting"; done
done

seed2="$MC_RUNS/grasp-parrot-awac-mc-s2"
[ -f "$seed2/checkpoint.pt" ] || { echo "no $seed2: run experiments/rl_time_limit.sh first"; exit 1; }
for lambda in 0.1 0.03 0.01; do
  refit="$OUT/refit-s2-l$lambda"
  [ -f "$OUT/eval_refit_s2_l${lambda}_20000.json" ] && continue
  .venv/bin/python experiments/awac_refit.py "$seed2" "$refit" --awac-lambda "$lambda" --awac-value-samples 8
  parrot export-policy "$refit" --out "$refit/export"
  parrot eval-policy --policy "$refit/export" --prior models/prior_xarm6_48px --task grasp \
      --objects heldout --episodes 100 --seed 20000 --no-progress \
      --out "$OUT/eval_refit_s2_l${lambda}_20000.json"
done
