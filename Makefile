# The README's two commands: `make demo` (install + run the main job) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint bench bytecode clean

$(BIN)/crashsight: pyproject.toml src/crashsight_hook.pth
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# Bytecode for the editable source, as pip writes it for an installed package: every worker
# imports crashsight.runner, and where PYTHONDONTWRITEBYTECODE is set (CI images often do)
# each worker would compile it again (about 25 ms per start, measured).
bytecode: $(BIN)/crashsight
	$(BIN)/python -m compileall -q src > /dev/null

demo: $(BIN)/crashsight
	$(BIN)/crashsight demo

test: bytecode
	$(BIN)/python -m pytest

# crashsight's cost as ratios against what users would use instead (~5 min on 2 cores);
# `$(BIN)/python -m benchmarks.run --quick` is the few-second smoke run.
bench: bytecode
	$(BIN)/python -m benchmarks.run

lint: $(BIN)/crashsight
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
