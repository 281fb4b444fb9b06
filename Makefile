# Set-up is two commands on a machine with python3 and make: `make run` and `make test`.
# Both create .venv when missing and install the project (and its Jupyter kernel) into it.

# bash: the test target needs pipefail, which POSIX sh lacks.
SHELL := /bin/bash

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
ROWS ?= 1000

.PHONY: setup run test test-oldest test-airflow test-lab lab lint clean replica replica-down fault-matrix

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[app,lab,test]'
	# papermill and JupyterLab start the "python3" kernel: make it this venv's Python.
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (softbee .venv)"
	touch $(INSTALLED)

# mysqlclient (MySQLdb), the second MySQL driver the tests run on, has no Linux wheels: it builds
# against libmariadb-dev (or libmysqlclient-dev) with pkg-config and a C compiler. Without them
# one line says so and its tests skip (under CI=true they fail; .ci/run installs the headers).
# No stamp on failure: the next make tries again, so installing the headers is all it takes.
MYSQLCLIENT := $(VENV)/.installed-mysqlclient
$(MYSQLCLIENT): $(INSTALLED)
	@if $(BIN)/python -m pip install --quiet mysqlclient >$(VENV)/mysqlclient-build.log 2>&1; then \
		touch $@; \
	else \
		echo "make: mysqlclient (MySQLdb) could not be built, so its tests skip: apt-get install libmariadb-dev pkg-config (see $(VENV)/mysqlclient-build.log)"; \
	fi

setup: $(INSTALLED) $(MYSQLCLIENT)

# The main job on the embedded SQLite default: the upgrade runbook, archived, then sample rows.
run: $(INSTALLED)
	$(BIN)/softbee-runbook run upgrade_downgrade
	FLASK_APP=softbee $(BIN)/flask softbee seed --rows $(ROWS) --if-empty

# The whole output goes to test-results/pytest.log (and the terminal), the per-test results to
# test-results/junit.xml; pytest's exit status is make's. On a failure the failing tests are
# listed again at the very end, with where to read their output.
RESULTS := test-results
# loadgroup: tests marked xdist_group share one worker (one cluster fixture, made and dropped once)
PYTEST_ARGS ?= -n auto --dist loadgroup
test: $(INSTALLED) $(MYSQLCLIENT)
	@mkdir -p $(RESULTS)
	@set -o pipefail; \
	$(BIN)/python -m pytest $(PYTEST_ARGS) --junitxml=$(RESULTS)/junit.xml 2>&1 | tee $(RESULTS)/pytest.log; \
	status=$$?; \
	if [ $$status -ne 0 ]; then \
		echo; \
		echo "make test: FAILED (pytest exit status $$status)"; \
		grep -E '^(FAILED|ERROR) ' $(RESULTS)/pytest.log || echo "(no test reported failing: see the log)"; \
		echo "Full output, tracebacks and captured output of each failing test: $(RESULTS)/pytest.log"; \
		echo "Per-test results: $(RESULTS)/junit.xml"; \
	fi; \
	exit $$status

# The runbook library on the oldest stack it supports (requirements/oldest.txt: Flask 2.1,
# Flask-SQLAlchemy 2.5, SQLAlchemy 1.4, Flask-Migrate 2.5, Alembic 1.7), in .venv-oldest:
# softbee goes on top with --no-deps, so the pins stay as they are. The venv is rebuilt only
# when requirements/oldest.txt changes (the stamp holds that file's sha256).
OLDEST := .venv-oldest
OLDEST_STAMP := $(OLDEST)/.installed-$(shell sha256sum requirements/oldest.txt | cut -c1-16)
OLDEST_TESTS := tests/test_oldest_stack.py tests/engine/test_capture.py tests/project/test_self_migrating.py

$(OLDEST_STAMP): requirements/oldest.txt
	rm -rf $(OLDEST)
	$(PYTHON) -m venv $(OLDEST)
	$(OLDEST)/bin/python -m pip install --quiet --upgrade pip
	$(OLDEST)/bin/python -m pip install --quiet -r requirements/oldest.txt
	$(OLDEST)/bin/python -m pip install --quiet --no-deps -e .
	$(OLDEST)/bin/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (softbee .venv-oldest)"
	touch $(OLDEST_STAMP)

# The oldest_stack example through the library and the four runbooks, then every guard on
# every env.py shape of the corpus (the corpus's runbook runs are left to `make test`), then
# a multi-database project bind by bind (its MariaDB bind needs PyMySQL, not in this stack).
test-oldest: $(OLDEST_STAMP)
	SOFTBEE_STACK=oldest $(OLDEST)/bin/python -m pytest -n 2 -p no:cacheprovider $(OLDEST_TESTS)
	SOFTBEE_STACK=oldest $(OLDEST)/bin/python -m pytest -n 2 -p no:cacheprovider -m "not notebook" \
		tests/project/test_envpy_corpus.py
	SOFTBEE_STACK=oldest $(OLDEST)/bin/python -m pytest -n 2 -p no:cacheprovider -k "not mariadb" \
		tests/engine/test_binds.py

# The Airflow fleet DAG, proved with `airflow dags test` on three local databases.
# Airflow gets its own venv, built from requirements/airflow.txt (versions that resolved here,
# frozen: Airflow's constraint files are not reachable from these machines) and cached outside
# the checkout under a name keyed by that file's hash, so CI reinstalls only when the pins change.
# The checkout reaches it through PYTHONPATH, never installed into it: checkouts can share the cache.
AIRFLOW_CACHE ?= $(HOME)/.cache/softbee
AIRFLOW_KEY := $(shell sha256sum requirements/airflow.txt 2>/dev/null | cut -c1-12)
AIRFLOW_VENV ?= $(AIRFLOW_CACHE)/venv-airflow-$(AIRFLOW_KEY)

# No prerequisite: the venv's name already follows the file's content, and a fresh checkout's
# newer requirements file must not make an up-to-date cache look stale.
$(AIRFLOW_VENV)/.installed:
	rm -rf $(AIRFLOW_VENV)
	$(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(AIRFLOW_VENV)/bin/python -m pip install --quiet -r requirements/airflow.txt
	$(AIRFLOW_VENV)/bin/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (softbee airflow)"
	touch $@

test-airflow: $(AIRFLOW_VENV)/.installed
	PYTHONPATH=$(CURDIR) $(AIRFLOW_VENV)/bin/python examples/airflow/ci_check.py

# The checks that start a real JupyterLab and drive it in headless chromium (tests marked
# "lab", e.g. tests/run/test_cells_jupyterlab.py): over a minute each on the 2-core machine,
# so `make test` leaves them out and this target (and .ci/run) runs them.
test-lab: $(INSTALLED)
	$(BIN)/python -m pytest -m lab -p no:cacheprovider tests/

# Step through the runbooks in JupyterLab with the project's kernel, from the project root.
# LAB_ARGS passes more options, e.g. `make lab LAB_ARGS="--no-browser --port 8899"`.
LAB_ARGS ?=
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)
lab: $(INSTALLED)
	SOFTBEE_PROJECT_ROOT=$(CURDIR) $(BIN)/jupyter lab --notebook-dir=$(CURDIR) $(ROOT_FLAG) $(LAB_ARGS) runbooks/

# A streaming replica of the local PostgreSQL 15 (cluster 15/replica, port 5433) for the
# replica-lag throttle and its test (docs/reliability.md). Idempotent; needs root. The tests
# that need it make it themselves and drop it when done; `make replica-down` drops it and
# its replication slot.
replica:
	scripts/pg-replica.sh up

replica-down:
	scripts/pg-replica.sh down

# The fault matrix (docs/reliability.md): restarts, a terminated session, a cut connection, a
# full archive disk, SIGTERM and SIGKILL, each at five moments of a real upgrade. Makes its own
# cluster 15/faults (port 5434, the only one it restarts) and a tmpfs for the archive, and
# removes both. Needs root; a few minutes. Not part of `make test`.
FAULT_ROWS ?= 50000
fault-matrix: $(INSTALLED)
	$(BIN)/python benchmarks/fault_matrix.py --rows $(FAULT_ROWS) $(FAULT_ARGS)

clean:
	rm -rf $(VENV) $(OLDEST) instance build *.egg-info $(RESULTS)
