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

train() { rl_train "$1" "$2" "$3" awac-mc "${@:4}"; }  # TASK SEED NAME [extra flags]
evaluate() { rl_evaluate "$@"; }

(train grasp 0 awac-mc; train grasp 2 awac-mc; train grasp 1 awac-mc-utd2 --updates-per-step 2
 train grasp 0 priv-awac-mc --observation privileged --steps 20000 --eval-every 5000) &
(train grasp 1 awac-mc; train grasp 2 awac-mc-utd2 --updates-per-step 2
 train grasp 0 awac-mc-utd2 --updates-per-step 2; train pick_place 0 awac-mc
 train pick_place 1 awac-mc) &
wait
for seed in 0 1 2; do evaluate grasp $seed awac-mc; evaluate grasp $seed awac-mc-utd2; done
for seed in 0 1; do evaluate pick_place $seed awac-mc; done
