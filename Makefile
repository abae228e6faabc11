# Habits: `make install test lint` before every push.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install test test-long lint check typecheck format bench demo docs clean

$(BIN)/soul:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev]'

install: $(BIN)/soul

test: install
	$(BIN)/python -m pytest -q

test-long: install
	$(BIN)/python -m pytest -q -m slow

lint: install
	$(BIN)/ruff check soul tests bench scripts
	$(BIN)/ruff format --check soul tests bench scripts

typecheck: install
	$(BIN)/mypy

check: lint typecheck test

format: install
	$(BIN)/ruff format soul tests bench scripts
	$(BIN)/ruff check --fix soul tests bench scripts

bench: install
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python bench/run_all.py

docs: install
	$(BIN)/python scripts/gen_cli_docs.py

demo: install
	@d=$$(mktemp -d); \
	$(BIN)/soul --home $$d/soul init --instance demo && \
	$(BIN)/soul --home $$d/soul remember "The deploy script lives in ops/deploy.sh" --kind fact --tag ops && \
	$(BIN)/soul --home $$d/soul remember "Priya prefers short PR descriptions" --kind person && \
	$(BIN)/soul --home $$d/soul recall "where is the deploy script" && \
	$(BIN)/soul --home $$d/soul status; rm -rf $$d

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache
