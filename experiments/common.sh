# Sourced by the experiment scripts: the CLI they call and the resume flag of a training run.
parrot() { "${PARROT:-.venv/bin/parrot}" "$@"; }  # PARROT=... to use another install
resume_flag() { [ -f "$1/last.pt" ] && echo --resume || true; }  # RUN: continue it if started
