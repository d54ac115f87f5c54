# Two commands on a fresh machine:
#   make synth   set up Python + Node, synthesize every stack into cdktf.out/
#   make test    set up everything the tests need, then run all test tiers
#   make lock    rewrite the instances' hash locks (MLFLOW_VERSIONS="3.17.2 ..."; default: every locked version)
SHELL := /bin/bash
export PIPENV_VENV_IN_PROJECT := 1
export PIPENV_NOSPIN := 1
export PIPENV_YES := 1
PIPENV ?= $(shell command -v pipenv 2>/dev/null || echo "python3 -m pipenv")

.PHONY: setup synth test test-unit diagram policy-scan bench clean

.venv/.synced: Pipfile.lock
	python3 -m pipenv --version >/dev/null 2>&1 || python3 -m pip install --quiet --disable-pip-version-check 'pipenv==2026.10.3'
	python3 -m pipenv sync --dev
	touch $@

node_modules/.installed: package-lock.json
	npm ci --no-audit --no-fund
	touch $@

# checkov in its own environment: it pins an older boto3 than moto needs.
.venv-checkov/.installed: tools/checkov/requirements.txt
	python3 -m venv .venv-checkov
	.venv-checkov/bin/pip install --quiet --disable-pip-version-check -r tools/checkov/requirements.txt
	touch $@

setup: .venv/.synced node_modules/.installed

synth: setup
	python3 -m pipenv run python main.py
	@for f in cdktf.out/stacks/*/cdk.tf.json; do echo "synthesized $$f"; done

# Debian packages for the runtime tier (nginx, PostgreSQL, MariaDB, shellcheck).
.runtime-deps:
	bash .ci/install-runtime-deps
	touch $@

test: setup .runtime-deps .venv-checkov/.installed
	python3 -m pipenv run python -m pytest

test-unit: setup
	python3 -m pipenv run python -m pytest -m "not terraform and not emulator and not runtime"

diagram: setup
	python3 -m pipenv run python tools/diagram.py

policy-scan: setup .venv-checkov/.installed
	python3 -m pipenv run python -m pytest -m policy -s tests/test_policy_scan.py

# Hash locks of MLflow's venv on the instances, one per MLflow version, and of uv
# (modules/mlflow_instance/locks/); uv pinned in the Pipfile writes them.
.PHONY: lock
lock: setup
	python3 -m pipenv run python -m modules.mlflow_instance $(MLFLOW_VERSIONS)

bench: setup
	python3 -m pipenv run python bench/synth_bench.py

clean:
	rm -rf cdktf.out .venv .venv-checkov node_modules .runtime-deps
