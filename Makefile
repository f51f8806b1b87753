# The two commands of the README, and the chores around them.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint proto bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# First command: install everything and run the main job end to end.
demo: $(BIN)/python
	$(BIN)/pip install -q -e '.[embedded]'
	$(BIN)/nndl-demo

# Second command: install the test dependencies, lint, and run the whole suite.
test: $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/ruff check .
	$(BIN)/pytest -q

lint: $(BIN)/python
	$(BIN)/ruff check .

# Regenerates the committed gRPC stubs from proto/nndl/v1/nndl.proto.
proto: $(BIN)/python
	$(BIN)/python proto/generate.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache var
