# contact-sync: `make help` lists the targets.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install lint format test demo bench clean

help: ## show this help
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-9s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "contact-sync needs Python 3.11+ (found: $$($(PYTHON) --version))"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m compileall -q sync
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install the project (editable) with dev tools

lint: $(STAMP) ## ruff check, ruff format --check, mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP) ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint ## lint, then the whole test suite
	$(BIN)/python -m pytest -q

demo: $(STAMP) ## start the emulator, plan and apply sample_data/, show the result
	$(BIN)/python -m sync.cli.demo

bench: $(STAMP) ## benchmarks: the project beside its baselines, side by side
	$(BIN)/python -m compileall -q sync
	$(BIN)/python -m benchmarks

clean: ## remove the virtualenv, caches and demo output
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis demo-output
	find sync -name __pycache__ -type d -prune -exec rm -rf {} +
