# The two commands of the README: `make run` and `make test`. Each builds .venv by itself.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint format bench bench-smoke clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)  ## the service on its embedded default (SQLite + filesystem broker)
	$(PY) manage.py run

# Three pytest workers: most long tests wait on subprocesses and servers, not on the CPU; each worker
# has its own Redis database (tests/conftest.py), and a test file stays on one worker.
test: $(STAMP)  ## lint, then the whole suite (integration tests need PostgreSQL + Redis)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest -q -p no:cacheprovider -n 3 --dist loadfile

lint: $(STAMP)
	$(PY) -m ruff check .

format: $(STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

bench: $(STAMP)  ## issue 11's targets as one table + bench/out/latest.json (needs PostgreSQL, Redis, wrk)
	$(PY) bench/run_all.py

bench-smoke: $(STAMP)  ## the same runner at tiny sizes (~2 min on a quiet machine)
	$(PY) bench/run_all.py --smoke

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
