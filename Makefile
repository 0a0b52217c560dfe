# Two commands: `make run` (the whole DAG on the embedded default) and `make test`.
# `make run` is also how to go on after a crash or a kill: it removes the lock the dead run left
# when no Snakemake runs in this folder, and Snakemake reruns the jobs it left incomplete.
# Both create .venv with pip on first use and reinstall when pyproject.toml changes.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
CONFIG ?= config/config.yaml
CORES  ?= 1
# Extra arguments for Snakemake, e.g. `make run SNAKEMAKE_ARGS="-n"`.
SNAKEMAKE_ARGS ?=

.PHONY: setup run report test lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "aunce needs Python >= 3.11, found " + sys.version.split()[0])'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade --quiet pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

run: export PATH := $(CURDIR)/$(BIN):$(PATH)
run: $(STAMP)
	@test -f "$(CONFIG)" || { echo "error: config file '$(CONFIG)' not found (set CONFIG=path/to/config.yaml)" >&2; exit 2; }
	@$(BIN)/aunce check-config "$(CONFIG)"  # a config that does not load or validate: one line
	@$(BIN)/aunce unlock-stale  # a lock left by a crash or a kill (README, "After a crash")
	$(BIN)/snakemake all --cores $(CORES) --resources gpu=1 --configfile="$(CONFIG)" $(SNAKEMAKE_ARGS)

# Snakemake's HTML report of the last run of CONFIG (verdicts on its front page; docs/report.md).
report: export PATH := $(CURDIR)/$(BIN):$(PATH)
report: $(STAMP)
	$(BIN)/snakemake --report results/report.html --configfile="$(CONFIG)" $(SNAKEMAKE_ARGS)

test: export PATH := $(CURDIR)/$(BIN):$(PATH)
test: $(STAMP)
	$(BIN)/python -m pytest

lint: export PATH := $(CURDIR)/$(BIN):$(PATH)
lint: $(STAMP)
	$(BIN)/ruff check aunce tests benchmarks
	$(BIN)/snakemake --lint --cores 1

clean:
	find results -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +
	rm -rf .snakemake
