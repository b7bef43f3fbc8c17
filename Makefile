# Two entry points: `make demo` (small end-to-end run on the sim twin) and `make test`.
# Both build .venv themselves from requirements.txt (CPU torch, ROS 2 wheels, pybullet).
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
# The venv is the ROS 2 prefix: ament_index looks for share/ under it.
export AMENT_PREFIX_PATH := $(abspath $(VENV))
export PYTHONHASHSEED := 0

.PHONY: demo test test-stress bench env clean

env: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q tests

# The timing-sensitive (ROS) tests 5 times, 2 at a time, beside a CPU hog: prints the flake rate.
test-stress: $(STAMP)
	$(BIN)/python tests/stress.py --runs 5 --parallel 2 --hogs 1

demo: $(STAMP)
	$(BIN)/python -m parrot_cli.demo

bench: $(STAMP)
	for b in benchmarks/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) demo_out
