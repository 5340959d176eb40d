# The two commands a new user needs: `make run` and `make test`. Both set up first when needed.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
UV := $(BIN)/uv
LOCK := requirements/lock.txt
# Offline-friendly defaults for every tool we run: TensorFlow's Object Detection API needs Keras 2.
export TF_USE_LEGACY_KERAS := 1
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: setup run test test-fast lint lock bench clean help

help:
	@echo "make run    set up, then prepare the bundled sample data (the main job)"
	@echo "make test   set up, then run the linters and every test"
	@echo "make setup  create $(VENV) from the pinned lock ($(LOCK))"
	@echo "make lock   re-resolve the lock from pyproject.toml (needs the network)"
	@echo "make bench  run the benchmarks in benchmarks/"

setup: $(STAMP)

# The venv is rebuilt when the lock or the project metadata changes. Every package comes from the lock,
# hash-checked, with --no-deps: nothing outside the lock can be pulled in.
$(STAMP): $(LOCK) requirements/bootstrap.txt requirements/build-constraints.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (Python 3.11 is required)"; exit 1; }
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --no-deps --require-hashes -r requirements/bootstrap.txt
	$(UV) pip install --python $(BIN)/python --no-deps --require-hashes \
		--build-constraints requirements/build-constraints.txt -r $(LOCK)
	$(UV) pip install --python $(BIN)/python --no-deps --no-build-isolation --editable .
	touch $(STAMP)

run: setup
	$(BIN)/cardamage prepare-data

test: setup lint
	$(BIN)/python -m pytest -n 2 --dist loadgroup

test-fast: setup lint
	$(BIN)/python -m pytest -n 2 --dist loadgroup -m "not slow"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: setup
	$(BIN)/python benchmarks/prepare_data_throughput.py

lock:
	@test -x $(UV) || { echo "run 'make setup' first (the lock is compiled with the pinned uv)"; exit 1; }
	$(UV) pip compile pyproject.toml --extra test --override requirements/overrides.txt \
		--python-version 3.11 --python-platform x86_64-manylinux_2_28 --generate-hashes \
		--no-header -o $(LOCK)
	$(UV) pip compile containers/training/requirements.in -c $(LOCK) --override requirements/overrides.txt \
		--python-version 3.11 --python-platform x86_64-manylinux_2_28 --generate-hashes \
		--no-header --no-annotate -o containers/training/requirements.txt
	$(UV) pip compile containers/processing/requirements.in -c $(LOCK) --override requirements/overrides.txt \
		--python-version 3.11 --python-platform x86_64-manylinux_2_28 --generate-hashes \
		--no-header --no-annotate -o containers/processing/requirements.txt

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info
