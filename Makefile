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
export Q  # make sql's query reaches the shell as an environment variable: quotes inside it survive

export PYSPARK_PYTHON := $(CURDIR)/$(PY)
export PYSPARK_DRIVER_PYTHON := $(CURDIR)/$(PY)
JARS := .jars
JARS_STAMP := $(JARS)/.fetched
# delta-spark's jars (when setup could fetch them) and the Delta SQL confs, as spark-submit options
SPARK_SUBMIT = $(VENV)/bin/spark-submit --driver-java-options "-Dlog4j2.configurationFile=file:$(CURDIR)/conf/spark/log4j2.properties" $$($(PY) -m jobs.tables.jars)

.PHONY: help setup check-java demo run evaluate test test-slow test-faults lint format check bench package cluster-test sql notebook clean

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

# The native engine's jars (conf/maven/pom.xml), only when missing. A machine that cannot reach
# Maven Central gets one line saying so and no stamp, and the job runs on the embedded engine.
$(JARS_STAMP): conf/maven/pom.xml conf/maven/fetch-jars.sh | $(STAMP)
	@bash conf/maven/fetch-jars.sh $(JARS) "$$($(PY) -c 'import pyspark, os; print(os.path.join(os.path.dirname(pyspark.__file__), "jars"))')"
	@if ls $(JARS)/delta-spark_*.jar >/dev/null 2>&1; then touch $@; fi

setup: $(STAMP) $(JARS_STAMP) ## create .venv with the pinned dependencies and fetch delta-spark's jars into .jars/ (only when missing or stale)

demo: setup ## create the demo input table and register the demo model (when missing)
	$(PY) -m jobs.demo

run: demo ## score one partition of the demo table through spark-submit (PARTITION=2024-06-01)
	$(SPARK_SUBMIT) jobs/score.py --conf $(CONF) --partition ds=$(PARTITION)

evaluate: demo ## score every demo day not yet scored (a resumable backfill), then evaluate them all against the demo labels
	$(SPARK_SUBMIT) jobs/score.py --conf $(CONF) --from 2024-06-01
	@code=0; $(SPARK_SUBMIT) jobs/evaluate.py --conf $(CONF) --from 2024-06-01 --window 7d || code=$$?; \
	if [ $$code -eq 4 ]; then echo "make evaluate: exit 4, model degraded: retraining recommended (the demo degrades on 2024-06-03 on purpose)"; \
	elif [ $$code -ne 0 ]; then exit $$code; fi

sql: setup ## SQL over the demo job's tables with DuckDB: make sql Q="select * from runs"
	@$(PY) -m jobs.tools.sql --conf $(CONF) "$$Q"

notebook: setup ## run the analysts' notebook over the demo tables into build/quality.ipynb (make run first)
	@mkdir -p build
	$(PY) -m jobs.tools.notebook --conf $(CONF) --out build/quality.ipynb

test: setup ## run the test suite, both Delta engines (without the slow multi-process cases: make test-slow)
	$(PY) -m pytest -q -m "not cluster and not slow and not faults"

test-slow: setup ## the cases that start their own spark-submit or job processes (minutes each)
	$(PY) -m pytest -q -m "slow and not cluster and not faults"

test-faults: setup ## kill -9 the job at each step and run two at once, on both engines; check the tables with delta-rs
	$(PY) -m pytest -q -m faults tests/faults

LINTED := jobs transforms tests bench

lint: setup ## ruff's rules over the code (style, bugs, complexity ratchet)
	$(VENV)/bin/ruff check $(LINTED)

format: setup ## rewrite the code in ruff's format and apply ruff's safe fixes
	$(VENV)/bin/ruff format $(LINTED)
	$(VENV)/bin/ruff check --fix $(LINTED)

check: setup ## what CI checks before the tests: ruff format --check, ruff check, mypy (setup.cfg [mypy])
	$(VENV)/bin/ruff format --check $(LINTED)
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/mypy

bench: demo ## scoring throughput (ours vs spark_udf vs predict), a challenger's cost, Delta I/O (embedded vs Spark Parquet), evaluating labelled rows, ROWS=1000000
	$(PY) -m bench.scoring --rows $(ROWS)
	$(PY) -m bench.challengers --rows $(ROWS)
	$(PY) -m bench.io --rows $(ROWS) --rounds 3
	$(PY) -m bench.evaluation --rows $(ROWS)

PACK_VENV := build/pack-venv
ENV_ARCHIVE := dist/lakescore-env.tar.gz
SOURCES := $(shell find jobs transforms -name '*.py')

# The Python environment for --archives: the job's dependencies at the lock's pins and the job's
# own code, without pyspark (a cluster brings its own Spark and puts its pyspark on the workers'
# path). The code must be in it, not only in --py-files: the Python workers Spark starts on the
# driver to plan and commit the embedded engine's reads and writes do not see --py-files.
$(PACK_VENV)/.deps: requirements.lock setup.cfg | $(STAMP)
	rm -rf $(PACK_VENV) build/lib build/deps
	$(PY) -m pip wheel --quiet --no-deps -w build/deps .
	$(PYTHON) -m venv $(PACK_VENV)
	$(PACK_VENV)/bin/python -m pip install --quiet -c requirements.lock build/deps/lakescore-*.whl
	$(PACK_VENV)/bin/python -m pip uninstall --quiet -y pyspark delta-spark py4j
	touch $@

$(ENV_ARCHIVE): $(PACK_VENV)/.deps $(SOURCES)
	rm -rf build/lib build/deps && mkdir -p dist
	$(PY) -m pip wheel --quiet --no-deps -w build/deps .
	$(PACK_VENV)/bin/python -m pip install --quiet --no-deps --force-reinstall build/deps/lakescore-*.whl
	$(VENV)/bin/venv-pack --quiet --force -p $(PACK_VENV) -o $@

package: setup $(ENV_ARCHIVE) ## the job's wheel and its Python environment for --archives, in dist/; prints the spark-submit commands
	rm -rf dist/lakescore-*.whl build/lib
	$(PY) -m pip wheel --quiet --no-deps -w dist .
	@$(PY) -m jobs.tools.submit_command --wheel "$$(ls dist/lakescore-*.whl)" --env $(ENV_ARCHIVE) --conf $(CONF)

cluster-test: package ## start a standalone Spark master and worker on 127.0.0.1, run the packaged job there, stop them
	$(PY) -m pytest -q -m cluster tests/cluster

clean: ## remove the demo state, build output and caches (keeps .venv)
	rm -rf .lakescore dist build *.egg-info .pytest_cache spark-warehouse
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +
