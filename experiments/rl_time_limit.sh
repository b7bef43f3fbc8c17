#!/bin/bash
# RL in z with Monte Carlo targets (--no-time-limit-bootstrap; docs/RL_DESIGN.md "Time limits"),
# the thirteenth session's runs (docs/RESULTS.md), two at a time on 2 cores:
#   grasp awac-mc        seeds 0-2: the README grasp setting plus --no-time-limit-bootstrap (20 min each)
#   grasp awac-mc-utd2   seeds 0-2: the same with two updates per env step (32 min each)
#   grasp priv-awac-mc   seed 0, 20k steps: the privileged sanity check with the same targets
#   pick_place awac-mc   seeds 0-1: the README pick-and-place setting plus the flag
# then exports every run and evaluates it on 200 held-out scenes from seed 20000. About 2.5 h on
# 2 cores; rerunning resumes every run and skips finished ones.
#
#   experiments/rl_time_limit.sh [OUT=runs/rl_mc]
set -euo pipefail
OUT=${1:-runs/rl_mc}
source "$(dirname "$0")/common.sh"
mkdir -p "$OUT"

prior_of() { [ "$1" = pick_place ] && echo models/prior_xarm6_48px_pick_place || echo models/prior_xarm6_48px; }
scene_of() { [ "$1" = pick_place ] && echo "--num-objects 1" || true; }

# the grid's awac-mc setting (experiments/parrot_vs_baselines.py SETTINGS, their one source)
AWAC_MC=$(.venv/bin/python -c "import sys; sys.path.insert(0, 'experiments')
from parrot_vs_baselines import SETTINGS; print(*SETTINGS['awac-mc'])")

train() {  # TASK SEED NAME [extra train-rl flags]
  local task=$1 seed=$2 name=$3; shift 3
  local run="$OUT/$task-parrot-$name-s$seed"
  parrot train-rl --task "$task" $(scene_of "$task") --objects heldout --algo parrot \
      --prior "$(prior_of "$task")" --steps 50000 --seed "$seed" $AWAC_MC \
      --eval-every 10000 --eval-episodes 100 --threads 1 --no-progress \
      --out "$run" $(resume_flag "$run") "$@"
}
evaluate() {  # TASK SEED NAME
  local task=$1 seed=$2 name=$3
  local run="$OUT/$task-parrot-$name-s$seed" export="$OUT/export-$task-$name-s$seed"
  [ -f "$OUT/eval_${task}_${name}_s${seed}_20000.json" ] && return
  parrot export-policy "$run" --out "$export"
  parrot eval-policy --policy "$export" --prior "$(prior_of "$task")" --task "$task" \
      $(scene_of "$task") --objects heldout --episodes 200 --seed 20000 \
      --out "$OUT/eval_${task}_${name}_s${seed}_20000.json"
}

(train grasp 0 awac-mc; train grasp 2 awac-mc; train grasp 1 awac-mc-utd2 --updates-per-step 2
 train grasp 0 priv-awac-mc --observation privileged --steps 20000 --eval-every 5000) &
(train grasp 1 awac-mc; train grasp 2 awac-mc-utd2 --updates-per-step 2
 train grasp 0 awac-mc-utd2 --updates-per-step 2; train pick_place 0 awac-mc
 train pick_place 1 awac-mc) &
wait
for seed in 0 1 2; do evaluate grasp $seed awac-mc; evaluate grasp $seed awac-mc-utd2; done
for seed in 0 1; do evaluate pick_place $seed awac-mc; done
