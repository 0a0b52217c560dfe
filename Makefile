# Two commands: `make run` (the whole DAG on the embedded default) and `make test`.
# `make run` is also how to go on after a crash or a kill: it removes the lock the dead run left
# when no Snakemake runs in this folder, and Snakemake reruns the jobs it left incomplete
# (docs/recovery.md). Both create .venv with pip on first use, with the exact versions of
# requirements.lock, and install again when pyproject.toml or the lock changes.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
LOCK   := requirements.lock
# One config file, or a base and overlays: CONFIG="config/config.yaml config/mine.yaml".
CONFIG ?= config/config.yaml
CORES  ?= 1
# The folder the run works in: its results go to $(DIR)/results (README, "Where results go"),
# e.g. `make run CONFIG=config/smoke.yaml DIR=runs/smoke`.
DIR    ?= .
# OVERWRITE=1: run into a folder that holds another configuration's results anyway.
OVERWRITE ?=
# Extra arguments for Snakemake, e.g. `make run SNAKEMAKE_ARGS="-n"`.
SNAKEMAKE_ARGS ?=

.PHONY: setup run report status test lint lock clean

setup: $(STAMP)

$(STAMP): pyproject.toml $(LOCK)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "aunce needs Python >= 3.11, found " + sys.version.split()[0])'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade --quiet pip
	$(BIN)/python -m pip install --quiet -c $(LOCK) -e '.[test]'
	@touch $(STAMP)

run: export PATH := $(CURDIR)/$(BIN):$(PATH)
run: $(STAMP)
	@for f in $(CONFIG); do test -f "$$f" || { echo "error: config file '$$f' not found (set CONFIG=path/to/config.yaml)" >&2; exit 2; }; done
	@mkdir -p "$(DIR)"
	@$(BIN)/aunce check-config $(CONFIG)  # a config that does not load or validate: one line
	@$(BIN)/aunce unlock-stale --directory "$(DIR)"  # a lock left by a crash or a kill (docs/recovery.md)
	$(BIN)/snakemake all --cores $(CORES) --resources gpu=1 --configfile $(CONFIG) --directory "$(DIR)" $(if $(OVERWRITE),--config overwrite=true) $(SNAKEMAKE_ARGS)

# Where the run in DIR is: each job's state, progress and ETA, and the expected end.
status: $(STAMP)
	@$(BIN)/aunce status "$(DIR)"

# Snakemake's HTML report of the last run of CONFIG in DIR (verdicts on its front page; docs/report.md).
report: export PATH := $(CURDIR)/$(BIN):$(PATH)
report: $(STAMP)
	$(BIN)/snakemake --report results/report.html --configfile $(CONFIG) --directory "$(DIR)" $(SNAKEMAKE_ARGS)

# The suite on TEST_WORKERS processes (pytest-xdist; tests/conftest.py hands the files out, the
# SLURM tests first: they mostly wait). `make test TEST_WORKERS=0` runs it in one process.
TEST_WORKERS ?= 3
test: export PATH := $(CURDIR)/$(BIN):$(PATH)
test: $(STAMP)
	$(BIN)/python -m pytest $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder)

lint: export PATH := $(CURDIR)/$(BIN):$(PATH)
lint: $(STAMP)
	$(BIN)/ruff check aunce tests benchmarks
	$(BIN)/snakemake --lint --cores 1

# Resolve pyproject.toml's ranges again (the newest versions pip finds) into requirements.lock,
# in a new virtual environment, installing nothing (scripts/lock.py). Then `make test`.
LOCK_VENV := $(VENV)-lock
lock:
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --upgrade --quiet pip
	$(LOCK_VENV)/bin/python -m pip install --quiet --dry-run --ignore-installed --report $(LOCK_VENV)/report.json -e '.[test]'
	$(LOCK_VENV)/bin/python scripts/lock.py $(LOCK_VENV)/report.json $(LOCK)
	rm -rf $(LOCK_VENV)

clean:
	find "$(DIR)/results" -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +
	rm -rf "$(DIR)/.snakemake"
