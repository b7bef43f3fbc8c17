#!/bin/bash
# A grasp prior fine-tuned on randomized images, and how it and the shipped prior do on plain,
# randomized and three-times-wider randomized held-out scenes (docs/RESULTS.md, "A prior
# fine-tuned on randomized images"). About 45 min on 2 cores; rerunning resumes the training.
#
#   experiments/randomized_prior.sh [OUT=runs/p6] [PLAIN_DATA=runs/data_mixed_s] [INIT=runs/prior_mixed_g3000]
#
# PLAIN_DATA and INIT are the shipped prior's dataset and training run (README, "Measured:
# random exploration through the prior"). The prior-viz summaries (JSON) land in OUT/viz.
set -euo pipefail
OUT=${1:-runs/p6}; PLAIN=${2:-runs/data_mixed_s}; INIT=${3:-runs/prior_mixed_g3000}
source "$(dirname "$0")/common.sh"
parrot collect --task mixed --episodes 8000 --workers 2 --seed 200000 --randomize \
    --out "$OUT/data_rand" --resume
parrot train-prior --data "$PLAIN" "$OUT/data_rand" --data-weights 1,1 --out "$OUT/prior_dr" \
    --init-from "$INIT" --lr 1e-4 --ema-decay 0.999 --steps 3000 --eval-every 500 \
    --snapshot-every 500 --threads 2 $(resume_flag "$OUT/prior_dr")
parrot export --prior "$OUT/prior_dr" --out "$OUT/export_dr"
viz() {  # NAME PRIOR ARGS...
  local name=$1 prior=$2; shift 2
  parrot prior-viz --prior "$prior" --task grasp --objects heldout --episodes 200 \
      --reach-episodes 0 --no-progress --out "$OUT/viz/$name.png" "$@"
}
viz dr_plain_10000 "$OUT/export_dr" --seed 10000
viz dr_plain_777000 "$OUT/export_dr" --seed 777000
viz dr_rand_10000 "$OUT/export_dr" --seed 10000 --randomize
viz dr_rand3_10000 "$OUT/export_dr" --seed 10000 --randomize --randomize-scale 3
viz shipped_rand3_10000 models/prior_xarm6_48px --seed 10000 --randomize --randomize-scale 3
