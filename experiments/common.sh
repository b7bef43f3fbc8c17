# Sourced by the experiment scripts: the CLI they call and the resume flag of a training run.
parrot() { "${PARROT:-.venv/bin/parrot}" "$@"; }  # PARROT=... to use another install
# RUN: continue it if started (a prior run keeps last.pt, an RL run checkpoint.pt)
resume_flag() { [ -f "$1/last.pt" ] || [ -f "$1/checkpoint.pt" ] && echo --resume || true; }

# ---- PARROT runs in z (experiments/rl_*.sh); the script sets OUT, the runs' folder ----
prior_of() { [ "$1" = pick_place ] && echo models/prior_xarm6_48px_pick_place || echo models/prior_xarm6_48px; }
scene_of() { [ "$1" = pick_place ] && echo "--num-objects 1" || true; }
# a setting's train-rl flags, from their one source (experiments/parrot_vs_baselines.py SETTINGS)
setting_flags() { .venv/bin/python -c "import sys; sys.path.insert(0, 'experiments')
from parrot_vs_baselines import SETTINGS; print(*SETTINGS['$1'])"; }

rl_train() {  # TASK SEED NAME SETTING [extra train-rl flags]: OUT/TASK-parrot-NAME-sSEED, 50k steps
  local task=$1 seed=$2 name=$3 setting=$4; shift 4
  local run="$OUT/$task-parrot-$name-s$seed"
  parrot train-rl --task "$task" $(scene_of "$task") --objects heldout --algo parrot \
      --prior "$(prior_of "$task")" --steps 50000 --seed "$seed" $(setting_flags "$setting") \
      --eval-every 10000 --eval-episodes 100 --threads 1 --no-progress \
      --out "$run" $(resume_flag "$run") "$@"
}
rl_evaluate() {  # TASK SEED NAME: export the run, evaluate it on 200 held-out scenes from 20000
  local task=$1 seed=$2 name=$3
  local run="$OUT/$task-parrot-$name-s$seed" export="$OUT/export-$task-$name-s$seed"
  [ -f "$OUT/eval_${task}_${name}_s${seed}_20000.json" ] && return
  parrot export-policy "$run" --out "$export"
  parrot eval-policy --policy "$export" --prior "$(prior_of "$task")" --task "$task" \
      $(scene_of "$task") --objects heldout --episodes 200 --seed 20000 --no-progress \
      --out "$OUT/eval_${task}_${name}_s${seed}_20000.json"
}
