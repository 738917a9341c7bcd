# Two commands: `make demo` and `make test`. Both create .venv and install skewless on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)  ## Generate the example data, apply the example repo, plan it again.
	$(BIN)/skewless demo --repo feature_repo

test: $(STAMP)  ## Run the whole suite against real Redis and PostgreSQL (see README).
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

lint: $(STAMP)  ## Style (ruff) and types (mypy --strict on the package).
	$(BIN)/ruff check skewless tests alembic feature_repo bench
	$(BIN)/ruff format --check skewless tests alembic feature_repo bench
	$(BIN)/mypy skewless

bench: $(STAMP)  ## Benchmarks side by side with Feast; results in docs/benchmarks.md.
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) feature_repo/.skewless feature_repo/data
