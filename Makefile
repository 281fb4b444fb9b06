# Set-up is two commands on a machine with python3 and make: `make run` and `make test`.
# Both create .venv when missing and install the project (and its Jupyter kernel) into it.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
ROWS ?= 1000

.PHONY: setup run test test-airflow lab lint clean

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	# papermill and JupyterLab start the "python3" kernel: make it this venv's Python.
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (softbee .venv)"
	touch $(INSTALLED)

setup: $(INSTALLED)

# The main job on the embedded SQLite default: the upgrade runbook, archived, then sample rows.
run: $(INSTALLED)
	$(BIN)/softbee-runbook run upgrade_downgrade
	FLASK_APP=softbee $(BIN)/flask softbee seed --rows $(ROWS) --if-empty

test: $(INSTALLED)
	$(BIN)/python -m pytest -n auto

# The Airflow fleet DAG, proved with `airflow dags test` on three local databases.
# Airflow gets its own venv, built from requirements/airflow.txt (versions that resolved here,
# frozen: Airflow's constraint files are not reachable from these machines) and cached outside
# the checkout under a name keyed by that file's hash, so CI reinstalls only when the pins change.
# The checkout reaches it through PYTHONPATH, never installed into it: checkouts can share the cache.
AIRFLOW_CACHE ?= $(HOME)/.cache/softbee
AIRFLOW_KEY := $(shell sha256sum requirements/airflow.txt 2>/dev/null | cut -c1-12)
AIRFLOW_VENV ?= $(AIRFLOW_CACHE)/venv-airflow-$(AIRFLOW_KEY)

$(AIRFLOW_VENV)/.installed: requirements/airflow.txt
	rm -rf $(AIRFLOW_VENV)
	$(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(AIRFLOW_VENV)/bin/python -m pip install --quiet -r requirements/airflow.txt
	$(AIRFLOW_VENV)/bin/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (softbee airflow)"
	touch $@

test-airflow: $(AIRFLOW_VENV)/.installed
	PYTHONPATH=$(CURDIR) $(AIRFLOW_VENV)/bin/python examples/airflow/ci_check.py

# Step through the runbooks in JupyterLab with the project's kernel, from the project root.
# LAB_ARGS passes more options, e.g. `make lab LAB_ARGS="--no-browser --port 8899"`.
LAB_ARGS ?=
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)
lab: $(INSTALLED)
	SOFTBEE_PROJECT_ROOT=$(CURDIR) $(BIN)/jupyter lab --notebook-dir=$(CURDIR) $(ROOT_FLAG) $(LAB_ARGS) runbooks/

clean:
	rm -rf $(VENV) instance build *.egg-info
