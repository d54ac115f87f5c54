# Two commands on a fresh machine:
#   make synth   set up Python + Node, synthesize every stack into cdktf.out/
#   make test    set up everything the tests need, then run all test tiers
#                (installs missing Debian packages as root; SYSTEM_PACKAGES=no skips that: README)
#   make lock    rewrite the instances' hash locks (MLFLOW_VERSIONS="3.17.2 ..."; default: every locked version)
SHELL := /bin/bash
export PIPENV_VENV_IN_PROJECT := 1
export PIPENV_NOSPIN := 1
export PIPENV_YES := 1
# No update checks from Terraform or the cdktf CLI (HashiCorp's checkpoint service).
export CHECKPOINT_DISABLE := 1
# Parallel test workers: the emulator tests mostly wait on the provider's polling (docs/tests.md, "Test time").
TEST_WORKERS ?= 6
PIPENV ?= $(shell command -v pipenv 2>/dev/null || echo "python3 -m pipenv")

.PHONY: setup synth test test-unit runtime-deps diagram policy-scan bench load-bench clean

.venv/.synced: Pipfile.lock
	python3 -m pipenv --version >/dev/null 2>&1 || python3 -m pip install --quiet --disable-pip-version-check 'pipenv==2026.10.3'
	python3 -m pipenv sync --dev
	touch $@

node_modules/.installed: package-lock.json
	npm ci --no-audit --no-fund
	touch $@

# The policy scanners, each in its own environment: checkov pins an older boto3 than moto
# needs; cloudsplaining 0.9 (with parliament, tools/iam-lint) a newer policy_sentry than checkov.
.venv-checkov/.installed: tools/checkov/requirements.txt tools/iam-lint/requirements.txt
	python3 -m venv .venv-checkov
	.venv-checkov/bin/pip install --quiet --disable-pip-version-check -r tools/checkov/requirements.txt
	python3 -m venv .venv-iam
	.venv-iam/bin/pip install --quiet --disable-pip-version-check -r tools/iam-lint/requirements.txt
	touch $@

setup: .venv/.synced node_modules/.installed

synth: setup
	python3 -m pipenv run python main.py

# Debian packages for the runtime tier (nginx, PostgreSQL, MariaDB, shellcheck): only the
# missing ones, never upgrading what is installed. SYSTEM_PACKAGES=no leaves the system alone
# (the runtime tier then skips where its tools are missing).
SYSTEM_PACKAGES ?= yes
runtime-deps:
	@if [ "$(SYSTEM_PACKAGES)" = yes ]; then bash .ci/install-runtime-deps; \
	else echo "SYSTEM_PACKAGES=no: Debian packages left as they are"; fi

test: setup runtime-deps .venv-checkov/.installed
	python3 -m pipenv run python -m pytest -n $(TEST_WORKERS) --dist load --maxschedchunk 1 --durations=15

test-unit: setup
	python3 -m pipenv run python -m pytest -n $(TEST_WORKERS) -m "not terraform and not emulator and not runtime and not policy"

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

# As root, with the runtime tier's packages: serving under load (docs/runtime.md, "Load benchmark").
load-bench: setup
	python3 -m pipenv run python bench/load_bench.py --runs 3

clean:
	rm -rf cdktf.out .venv .venv-checkov .venv-iam node_modules
