# Two commands set up a fresh machine: `make dev` and `make test`.
PYTHON ?= python3
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
PORT ?= 2024

.PHONY: install dev test lint typecheck check lock clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install -q uv==0.13.8

$(VENV)/.installed: $(UV) uv.lock pyproject.toml
	$(UV) sync --frozen --python $(PYTHON)
	touch $@

install: $(VENV)/.installed

dev: install
	$(VENV)/bin/threadline dev --config examples/langgraph.json --port $(PORT)

# Both deployments (SQLite, and PostgreSQL + Redis: see .ci/run); every test server has a
# port, database and key prefix of its own, so two workers share the machine safely.
# THREADLINE_TEST_BACKEND=sqlite runs the SQLite half only.
test: install
	$(VENV)/bin/python -m pytest -q -n 2

lint: install
	$(VENV)/bin/ruff check threadline tests bench
	$(VENV)/bin/ruff format --check threadline tests bench

typecheck: install
	$(VENV)/bin/mypy

check: lint typecheck test

lock: $(UV)
	$(UV) lock

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache
