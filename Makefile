# The two commands a new user needs: `make run` and `make test`. Both set up first when needed.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
UV := $(BIN)/uv
LOCK := requirements/lock.txt
# The endpoint handler's wheels for the serving image's Python (containers/inference/image.py), hash-checked: local
# training exports unpack them into the model's code/lib, as the training image does on AWS.
SERVING_WHEELS := $(VENV)/serving-wheels
WHEELS_STAMP := $(SERVING_WHEELS)/.downloaded
SERVING_PYTHON := 3.12
# The CDK CLI, pinned in package-lock.json (npm ci installs exactly that).
NODE_STAMP := node_modules/.installed
CDK := node_modules/.bin/cdk
# Offline-friendly defaults for every tool we run: TensorFlow's Object Detection API needs Keras 2.
export TF_USE_LEGACY_KERAS := 1
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: setup run test test-fast lint lock bench synth clean help labelstudio browser

help:
	@echo "make run    set up, then run the whole pipeline locally on the bundled sample (the main job)"
	@echo "make test   set up, then run the linters and every test"
	@echo "make setup  create $(VENV) from the pinned lock ($(LOCK))"
	@echo "make lock   re-resolve the lock from pyproject.toml (needs the network)"
	@echo "make bench  run the benchmarks in benchmarks/"
	@echo "make synth  synthesize the AWS CDK app into cdk.out/ (offline, no AWS credentials, no Docker)"
	@echo "make labelstudio  install the Label Studio server the review-loop test runs (part of make test)"
	@echo "make browser  install the Chromium the browser tests drive (part of make test; Debian's package as root)"

setup: $(STAMP) $(NODE_STAMP) $(WHEELS_STAMP)

# The venv is rebuilt when the lock or the project metadata changes. Every package comes from the lock,
# hash-checked, with --no-deps: nothing outside the lock can be pulled in.
$(STAMP): $(LOCK) requirements/bootstrap.txt requirements/build-constraints.txt requirements/test-build-constraints.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (Python 3.11 is required)"; exit 1; }
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --no-deps --require-hashes -r requirements/bootstrap.txt
	FALCON_DISABLE_CYTHON=1 $(UV) pip install --python $(BIN)/python --no-deps --require-hashes \
		--build-constraints requirements/build-constraints.txt --build-constraints requirements/test-build-constraints.txt -r $(LOCK)
	$(UV) pip install --python $(BIN)/python --no-deps --no-build-isolation --editable .
	touch $(STAMP)

$(WHEELS_STAMP): $(STAMP) containers/inference/requirements.txt
	rm -rf $(SERVING_WHEELS)
	$(BIN)/python -m pip download --quiet --disable-pip-version-check --no-deps --require-hashes --only-binary=:all: \
		--implementation cp --python-version $(SERVING_PYTHON) --platform manylinux_2_28_x86_64 \
		-d $(SERVING_WHEELS) -r containers/inference/requirements.txt
	touch $(WHEELS_STAMP)

# A real Label Studio server for the review loop's integration test, in its own venv from its own hash-pinned
# lock (requirements/labelstudio.txt), with an empty database already migrated (template/label_studio.sqlite3,
# about 75 s of Django migrations, done once per lock instead of at every server start): the test copies it
# into its temporary data folder. tests/pipelines/test_labelstudio_server.py runs this target itself too.
LABELSTUDIO_VENV := .venv-labelstudio
LABELSTUDIO_STAMP := $(LABELSTUDIO_VENV)/.installed
LABELSTUDIO_TEMPLATE := $(abspath $(LABELSTUDIO_VENV))/template
labelstudio: $(LABELSTUDIO_STAMP)
# (No prerequisite on the project's venv: the test runs this from inside it, which must never rebuild it.)
$(LABELSTUDIO_STAMP): requirements/labelstudio.txt
	@test -x $(UV) || { echo "run 'make setup' first (the Label Studio venv is installed with the pinned uv)"; exit 1; }
	rm -rf $(LABELSTUDIO_VENV)
	$(UV) venv --quiet --python $(PYTHON) $(LABELSTUDIO_VENV)
	$(UV) pip install --quiet --python $(LABELSTUDIO_VENV)/bin/python --no-deps --require-hashes -r requirements/labelstudio.txt
	mkdir -p $(LABELSTUDIO_TEMPLATE)
	LABEL_STUDIO_BASE_DATA_DIR=$(LABELSTUDIO_TEMPLATE) LATEST_VERSION_CHECK=false COLLECT_ANALYTICS=false \
		$(LABELSTUDIO_VENV)/bin/python "$$($(LABELSTUDIO_VENV)/bin/python -c 'import label_studio, os; print(os.path.dirname(label_studio.__file__))')/manage.py" \
		migrate --no-input > $(LABELSTUDIO_TEMPLATE)/migrate.log
	touch $(LABELSTUDIO_STAMP)

# The Chromium the browser tests drive (tests/browser.py picks it): Debian's package here (apt-get as root, or
# sudo -n), Playwright's own build on Ubuntu (CodeBuild), where Chromium is a snap. The choice is recorded in
# .venv/browser.json, so a rebuilt venv asks again (a second time costs a second: nothing to install).
BROWSER_STAMP := $(VENV)/browser.json
browser: $(BROWSER_STAMP)
$(BROWSER_STAMP): $(STAMP) tests/browser.py
	$(BIN)/python -m tests.browser install

# node_modules is reinstalled when the npm lock changes: the CDK CLI at the version package-lock.json pins.
$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null || { echo "error: npm not found (Node.js 20 or later runs the CDK CLI and aws-cdk-lib's jsii)"; exit 1; }
	npm ci --no-audit --no-fund --ignore-scripts
	touch $(NODE_STAMP)

# The main job: the whole pipeline on the bundled sample with pipeline.yaml's `local` profile, then one
# photo through the endpoint it deployed. STATE and IMAGE may be overridden (make run IMAGE=car.jpg).
STATE ?= .cardamage
IMAGE ?= data/sample/images/bilgi_university_car_damage/valid/0010686842_7600_jpg.rf.f3e8a28ffa4d5c2f1ed17d398907a903.jpg
run: setup
	$(BIN)/cardamage run --local --state-dir $(STATE)
	$(BIN)/cardamage predict --local "$(IMAGE)" --state-dir $(STATE) --output $(STATE)/predictions/make-run.png \
		--score-threshold 0 --max-detections 5

test: setup lint labelstudio browser
	$(BIN)/python -m pytest -n 2 --dist loadgroup --durations=25

test-fast: setup lint browser
	$(BIN)/python -m pytest -n 2 --dist loadgroup -m "not slow"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: setup
	$(BIN)/python benchmarks/prepare_data_throughput.py

# The app with the pinned CLI, offline: no credentials (the CLI would ask STS for the account), no telemetry,
# no notices. Docker image assets are only staged here; they are built at deploy time.
synth: setup
	env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN -u AWS_PROFILE \
		AWS_EC2_METADATA_DISABLED=true CDK_DISABLE_CLI_TELEMETRY=true JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 \
		$(CDK) synth --quiet

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
	$(UV) pip compile containers/inference/requirements.in -c $(LOCK) --override requirements/overrides.txt \
		--python-version $(SERVING_PYTHON) --python-platform x86_64-manylinux_2_28 --only-binary :all: --generate-hashes \
		--no-header --no-annotate -o containers/inference/requirements.txt
	$(UV) pip compile requirements/labelstudio.in --python-version 3.11 --python-platform x86_64-manylinux_2_28 --generate-hashes \
		--no-header -o requirements/labelstudio.txt

clean:
	rm -rf $(VENV) $(LABELSTUDIO_VENV) .pytest_cache .hypothesis build *.egg-info node_modules cdk.out
