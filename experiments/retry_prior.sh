#!/bin/bash
# Priors that try again: the shipped priors fine-tuned on scripted episodes that retry a missed
# grasp, 40% of them after a deliberate first miss 3-5 cm off the object (its steps are no
# demonstration: only the recovery is learnt). docs/RESULTS.md, eleventh session. Rerunning
# resumes the collection and each fine-tune.
#
#   experiments/retry_prior.sh [OUT=runs/retry] [STEPS=3000] [ATTEMPTS=12000]
#
# prior-viz summaries (JSON beside each plot): OUT/viz.
set -euo pipefail
OUT=${1:-runs/retry}; STEPS=${2:-3000}; ATTEMPTS=${3:-12000}
source "$(dirname "$0")/common.sh"
mkdir -p "$OUT/viz"

parrot collect --task mixed --episodes "$ATTEMPTS" --workers 2 --seed 600000 --retries 1 \
    --misaim 0.4 --out "$OUT/data_retry" --resume --no-progress

fine_tune() {  # NAME SHIPPED_PRIOR TASK_ARGS...: one torch thread
  local name=$1 init=$2; shift 2
  parrot train-prior --data "$OUT/data_retry" --out "$OUT/$name" "$@" --init-from "$init" \
      --lr 1e-4 --ema-decay 0.999 --steps "$STEPS" --eval-every 500 --snapshot-every 500 \
      --threads 1 --no-progress $(resume_flag "$OUT/$name")
  parrot export --prior "$OUT/$name" --which last --out "$OUT/export_$name"
}
fine_tune prior_mixed models/prior_xarm6_48px > "$OUT/train_mixed.log" 2>&1 &
fine_tune prior_pp models/prior_xarm6_48px_pick_place --tasks pick_place > "$OUT/train_pp.log" 2>&1 &
wait

viz() {  # NAME PRIOR ARGS...
  parrot prior-viz --prior "$2" --objects heldout --episodes 200 --no-progress \
      --out "$OUT/viz/$1.png" "${@:3}"
}
for seed in 10000 777000; do
  viz "grasp_$seed" "$OUT/export_prior_mixed" --task grasp --seed "$seed" &
  viz "pp_$seed" "$OUT/export_prior_pp" --task pick_place --num-objects 1 --seed "$seed" &
  wait
done
