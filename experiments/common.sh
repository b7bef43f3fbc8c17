# Sourced by the experiment scripts: the CLI they call and the resume flag of a training run.
parrot() { "${PARROT:-.venv/bin/parrot}" "$@"; }  # PARROT=... to use another install
# RUN: continue it if started (a prior run keeps last.pt, an RL run checkpoint.pt)
resume_flag() { [ -f "$1/last.pt" ] || [ -f "$1/checkpoint.pt" ] && echo --resume || true; }
