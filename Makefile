.DEFAULT_GOAL := help
.PHONY: help requirements kafka registry postgres test test-matrix quality docs demo bench upgrade clean manifests render-manifests \
	security

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# Apache Kafka's jars and Apicurio Registry live here (git-ignored); the broker and registry modules read this variable.
export KAFKA_CONSUMER_APP_CACHE ?= $(CURDIR)/.cache/kafka
PIP_COMPILE = CUSTOM_COMPILE_COMMAND="make upgrade" $(BIN)/pip-compile -q --allow-unsafe --strip-extras \
	--no-emit-index-url --no-emit-find-links

help: ## show this help
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-14s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python requirements/test.txt requirements/base.in setup.py
	$(BIN)/pip install -q -r requirements/test.txt -e .
	touch $@

requirements: $(VENV)/.installed ## create .venv and install the app with its test requirements

kafka: requirements ## fetch Apache Kafka's jars with Maven (needs Java 17+ and Maven)
	$(BIN)/python -m kafka_consumer_app.testing.broker fetch

registry: requirements ## fetch Apicurio Registry, the tests' schema registry, with Maven (needs Java 21+ and Maven)
	$(BIN)/python -m kafka_consumer_app.testing.registry fetch

# The tests that need a real database server start their own PostgreSQL (kafka_consumer_app.testing.postgres)
# from the installed server binaries; `check` looks for them where the module does, so Debian's package is
# installed only when they are missing.
postgres: requirements ## install PostgreSQL's server (Debian's postgresql package) unless it is installed already
	@$(BIN)/python -m kafka_consumer_app.testing.postgres check || { \
		sudo=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
		$$sudo apt-get update && \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql && \
		$(BIN)/python -m kafka_consumer_app.testing.postgres check; }

quality: requirements ## lint (ruff), layer contracts (import-linter), types (mypy --strict), Django's system checks
	$(BIN)/ruff check kafka_consumer_app tests example benchmarks docs setup.py .ci/matrix
	$(BIN)/ruff format --check kafka_consumer_app tests example benchmarks docs setup.py .ci/matrix
	$(BIN)/lint-imports
	PYTHONPATH=.:example $(BIN)/mypy
	DJANGO_SETTINGS_MODULE=example_project.settings $(BIN)/python example/manage.py check

test: requirements kafka registry postgres quality security docs ## set everything up and run the whole suite against a real broker
	$(BIN)/pytest

# -E rereads every page: the reference pages render the code's settings tables and the commands' parsers, which
# an incremental build would not notice changing (and it would not repeat the warnings of unchanged pages).
docs: requirements ## build the documentation site into docs/_build/html (warnings are errors, every reference must resolve)
	$(BIN)/sphinx-build -E -W --keep-going -n -q -b html docs docs/_build/html

# The other cells of the support matrix (.ci/matrix --list names them), each in its own virtualenv under
# .venv-matrix/. CELLS picks some: make test-matrix CELLS="py313-django61 py311-django52-kafka39".
test-matrix: requirements kafka ## run the matrix subset on every other Python/Django cell and on Kafka 3.9
	$(BIN)/python .ci/matrix $(CELLS)

demo: requirements kafka postgres ## start a local broker, run the example service's consumer, show what it handled (then the admin, in a terminal)
	$(BIN)/python example/demo.py $(DEMO_ARGS)

bench: requirements kafka postgres ## run the benchmarks against a local broker and PostgreSQL (options: make bench BENCH_ARGS=--quick)
	$(BIN)/pip install -q -r requirements/bench.txt
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

# `make manifests` renders k8s/ from the example project's settings as its cluster would read them: the variables
# below are what those settings read (MANIFESTS["ENV"] carries them into the ConfigMap). The credentials are
# placeholders that the settings require and the manifests never contain. env -i keeps the caller's own
# KAFKA_* variables out. tests/test_manifests.py runs render-manifests into a temporary directory and fails
# when k8s/ differs from it.
MANIFESTS_ENV = DJANGO_SETTINGS_MODULE=example_project.settings KAFKA_BOOTSTRAP_SERVERS=kafka-bootstrap.kafka.svc:9093 \
	KAFKA_SECURITY_PROTOCOL=SASL_SSL KAFKA_USERNAME=placeholder KAFKA_PASSWORD=placeholder
MANIFESTS_ARGS = --image ghcr.io/example/example-service:1.0.0
MANIFESTS_DIR = k8s
MANIFESTS_PYTHON = $(CURDIR)/$(BIN)/python

manifests: requirements render-manifests ## render k8s/ from the example project's settings (then commit k8s/)

render-manifests:
	cd example && env -i PATH="$$PATH" $(MANIFESTS_ENV) $(MANIFESTS_PYTHON) manage.py consumer_manifests \
		$(MANIFESTS_ARGS) --output $(abspath $(MANIFESTS_DIR))

# checkov has its own virtualenv: its pins conflict with the test requirements (see requirements/security.in).
SECURITY_VENV := .venv-security
$(SECURITY_VENV)/.installed: requirements/security.txt
	$(PYTHON) -m venv $(SECURITY_VENV)
	$(SECURITY_VENV)/bin/pip install -q -r requirements/security.txt
	touch $@

security: $(SECURITY_VENV)/.installed ## scan k8s/ with checkov, offline (skips and reasons: k8s/.checkov.yaml)
	$(SECURITY_VENV)/bin/checkov --config-file k8s/.checkov.yaml

upgrade: $(BIN)/python ## recompile requirements/*.txt from the .in files
	$(BIN)/pip install -q -r requirements/pip-tools.txt
	cd requirements && for f in base avro openedx postgres otel doc test pip-tools dev bench security; do $(PIP_COMPILE) $$f.in -o $$f.txt; done

clean: ## remove the virtualenv, caches, the fetched Kafka jars and Apicurio Registry
	rm -rf $(VENV) $(SECURITY_VENV) .venv-matrix docs/_build .cache .pytest_cache .ruff_cache .mypy_cache *.egg-info example/*.sqlite3
