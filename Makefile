# LakeScore: the commands a person types. `make` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.lakescore-installed
PARTITION ?= 2024-06-01
CONF ?= conf/jobs/churn.yaml
ROWS ?= 1000000

export PYSPARK_PYTHON := $(CURDIR)/$(PY)
export PYSPARK_DRIVER_PYTHON := $(CURDIR)/$(PY)
SPARK_SUBMIT := $(VENV)/bin/spark-submit --driver-java-options "-Dlog4j2.configurationFile=file:$(CURDIR)/conf/spark/log4j2.properties"

.PHONY: help setup check-java demo run test lint bench package clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

check-java: ## check that Java 17+ is installed (Spark 4 needs it)
	@v=$$(java -version 2>&1 | awk -F'"' '/version/ {print $$2}' | cut -d. -f1); \
	if [ -z "$$v" ] || [ "$$v" -lt 17 ]; then \
	  echo "Java 17 or newer is required (found: $${v:-none})."; \
	  echo "Install it, e.g. 'sudo apt-get install openjdk-17-jre-headless' (Debian/Ubuntu) or 'brew install openjdk@17'."; \
	  exit 1; fi

$(STAMP): setup.cfg requirements.lock pyproject.toml
	@$(MAKE) --no-print-directory check-java
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required (set PYTHON=/path/to/python3.11)")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

setup: $(STAMP) ## create .venv with the pinned dependencies (only when missing or stale)

demo: setup ## create the demo input table and register the demo model (when missing)
	$(PY) -m jobs.demo

run: demo ## score one partition of the demo table through spark-submit (PARTITION=2024-06-01)
	$(SPARK_SUBMIT) jobs/score.py --conf $(CONF) --partition ds=$(PARTITION)

test: setup ## run the test suite
	$(PY) -m pytest -q

lint: setup ## ruff over the code
	$(VENV)/bin/ruff check jobs transforms tests bench

bench: setup ## scoring throughput: ours vs mlflow spark_udf vs single-process predict (ROWS=1000000)
	$(PY) -m bench.scoring --rows $(ROWS)

package: setup ## build the wheel into dist/
	$(PY) -m pip wheel --quiet --no-deps -w dist .

clean: ## remove the demo state, build output and caches (keeps .venv)
	rm -rf .lakescore dist build *.egg-info .pytest_cache spark-warehouse
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +
