#!/bin/bash
# Grasp/mixed priors from scratch without the random +-2 px image shifts that every shipped prior
# trained with: with a fixed camera and the arm state as input, a shift moves the object in the
# image but not the TCP in the state, about 2 cm along x (docs/RESULTS.md, eleventh session).
# Two priors side by side: the paper's encoder, and the same with 16 spatial-softmax keypoints.
# About 85 min on 2 cores; rerunning resumes the collection and each training phase.
#
#   experiments/noaug_prior.sh [OUT=runs/noaug] [STEPS=10000] [FT_STEPS=3000]
#
# The collection repeats the shipped priors' (`--seed 100000`, 24000 attempts). Phase 1 trains
# with the arm state and the gripper labelled as a target state from the start; phase 2 lowers
# the rate with an EMA of the weights. prior-viz summaries (JSON beside each plot): OUT/viz.
set -euo pipefail
OUT=${1:-runs/noaug}; STEPS=${2:-10000}; FT_STEPS=${3:-3000}
source "$(dirname "$0")/common.sh"
mkdir -p "$OUT/viz"

parrot collect --task mixed --episodes 24000 --workers 2 --seed 100000 --out "$OUT/data_mixed" \
    --resume --no-progress

train() {  # NAME MODEL_ARGS...: phase 1 then phase 2, one torch thread, no augmentation
  local name=$1; shift
  parrot train-prior --data "$OUT/data_mixed" --out "$OUT/$name" "$@" --arm-state --augment none \
      --lr 1e-3 --steps "$STEPS" --eval-every 1000 --threads 1 --no-progress \
      $(resume_flag "$OUT/$name")
  parrot train-prior --data "$OUT/data_mixed" --out "$OUT/${name}_ft" --init-from "$OUT/$name" \
      --augment none --lr 2e-4 --ema-decay 0.999 --steps "$FT_STEPS" --eval-every 500 \
      --threads 1 --no-progress $(resume_flag "$OUT/${name}_ft")
  parrot export --prior "$OUT/${name}_ft" --which last --out "$OUT/export_$name"
}
train prior_mixed > "$OUT/train_mixed.log" 2>&1 &
train prior_mixed_kp --keypoints 16 > "$OUT/train_mixed_kp.log" 2>&1 &
wait

for seed in 10000 777000; do
  for name in prior_mixed prior_mixed_kp; do
    parrot prior-viz --prior "$OUT/export_$name" --task grasp --objects heldout --episodes 200 \
        --seed "$seed" --reach-episodes 0 --no-progress --out "$OUT/viz/${name}_grasp_$seed.png" &
  done
  wait
done
