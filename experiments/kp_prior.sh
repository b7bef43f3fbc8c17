#!/bin/bash
# Two follow-ups of the keypoint prior (the eleventh session's candidate, shipped since the twelfth
# as models/prior_xarm6_48px; docs/RESULTS.md), side by side on the same collection:
#   prior_kp_shift  16 keypoints WITH the +-2 px image shifts, from scratch (the ablation row
#                   that separates the keypoints from dropping the shifts);
#   prior_kp_long   that prior trained on: 5000 more steps at lr 2e-4 with an EMA (its
#                   validation NLL was still falling when its second phase stopped).
# About 95 min on 2 cores after the collection (27 min); rerunning resumes every stage.
#
#   experiments/kp_prior.sh [OUT=runs/kp] [STEPS=10000] [FT_STEPS=3000] [LONG_STEPS=5000]
set -euo pipefail
OUT=${1:-runs/kp}; STEPS=${2:-10000}; FT_STEPS=${3:-3000}; LONG_STEPS=${4:-5000}
source "$(dirname "$0")/common.sh"
mkdir -p "$OUT/viz"

# the shipped priors' collection, made again (deterministic per seed)
parrot collect --task mixed --episodes 24000 --workers 2 --seed 100000 --out "$OUT/data_mixed" \
    --resume --no-progress

kp_shift() {  # phase 1 (lr 1e-3) then phase 2 (2e-4, EMA), as experiments/noaug_prior.sh
  parrot train-prior --data "$OUT/data_mixed" --out "$OUT/prior_kp_shift" --arm-state \
      --keypoints 16 --augment shift --lr 1e-3 --steps "$STEPS" --eval-every 1000 --threads 1 \
      --no-progress $(resume_flag "$OUT/prior_kp_shift")
  parrot train-prior --data "$OUT/data_mixed" --out "$OUT/prior_kp_shift_ft" \
      --init-from "$OUT/prior_kp_shift" --augment shift --lr 2e-4 --ema-decay 0.999 \
      --steps "$FT_STEPS" --eval-every 500 --threads 1 --no-progress \
      $(resume_flag "$OUT/prior_kp_shift_ft")
  parrot export --prior "$OUT/prior_kp_shift_ft" --which last --out "$OUT/export_prior_kp_shift"
}
kp_long() {  # the export has no optimizer state: Adam starts afresh at 2e-4
  parrot train-prior --data "$OUT/data_mixed" --out "$OUT/prior_kp_long" \
      --init-from models/prior_xarm6_48px --augment none --lr 2e-4 --ema-decay 0.999 \
      --steps "$LONG_STEPS" --eval-every 500 --threads 1 --no-progress \
      $(resume_flag "$OUT/prior_kp_long")
  parrot export --prior "$OUT/prior_kp_long" --which last --out "$OUT/export_prior_kp_long"
}
viz() {  # NAME: grasp, held-out, both scene sets
  for seed in 10000 777000; do
    parrot prior-viz --prior "$OUT/export_$1" --task grasp --objects heldout --episodes 200 \
        --seed "$seed" --reach-episodes 0 --no-progress --out "$OUT/viz/$1_grasp_$seed.png"
  done
}
(kp_shift && viz prior_kp_shift) > "$OUT/kp_shift.log" 2>&1 &
(kp_long && viz prior_kp_long) > "$OUT/kp_long.log" 2>&1 &
wait
