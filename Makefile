.DEFAULT_GOAL := help
.PHONY: help requirements kafka test test-unit test-broker quality demo bench upgrade clean

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# Apache Kafka's jars live here (git-ignored); the broker module reads this variable.
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

quality: requirements ## lint with ruff and run Django's system checks
	$(BIN)/ruff check kafka_consumer_app tests example benchmarks setup.py
	$(BIN)/ruff format --check kafka_consumer_app tests example benchmarks setup.py
	DJANGO_SETTINGS_MODULE=example_project.settings $(BIN)/python example/manage.py check

test: requirements kafka quality ## set everything up and run the whole suite against a real broker
	$(BIN)/pytest

demo: requirements kafka ## start a local broker, run the example service's consumer, show what it handled
	$(BIN)/python example/demo.py

bench: requirements kafka ## run the benchmarks against a local broker and print the results table
	$(BIN)/python -m benchmarks

upgrade: $(BIN)/python ## recompile requirements/*.txt from the .in files
	$(BIN)/pip install -q -r requirements/pip-tools.txt
	cd requirements && for f in base test pip-tools dev; do $(PIP_COMPILE) $$f.in -o $$f.txt; done

clean: ## remove the virtualenv, caches and the fetched Kafka jars
	rm -rf $(VENV) .cache .pytest_cache .ruff_cache .mypy_cache *.egg-info example/*.sqlite3
