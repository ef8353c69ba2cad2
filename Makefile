# The README's commands: `make run` and `make test` (and `make bench`).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck pytest bench clean messages

$(STAMP): pyproject.toml setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	test -f newsletter.toml || $(BIN)/newsletter init
	$(BIN)/newsletter db upgrade
	$(BIN)/newsletter serve

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/deptry .

typecheck: $(STAMP)
	$(BIN)/mypy newsletter subscribers scheduler.py

pytest: $(STAMP)
	$(BIN)/pytest

test: lint typecheck pytest

# Extract the translatable strings (Babel) into newsletter/locale/messages.pot and merge them
# into each language's messages.po; then translate what it lists (docs/CONTRIBUTING.md).
messages: $(STAMP)
	$(BIN)/python tools/messages.py

bench: $(STAMP)
	$(BIN)/python bench/send_throughput.py
	$(BIN)/python bench/web_unsubscribe.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
