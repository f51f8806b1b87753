# The two commands of the README, and the chores around them.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint proto docs clean

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
	@# promtool (Debian's prometheus package) lints the metrics and the Prometheus config;
	@# those tests skip where it cannot be installed.
	command -v promtool >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; } || echo "prometheus not installed: its tests skip"
	$(BIN)/ruff check .
	$(BIN)/pytest -q

lint: $(BIN)/python
	$(BIN)/ruff check .

# Regenerates the committed gRPC stubs from proto/nndl/v1/nndl.proto.
proto: $(BIN)/python
	$(BIN)/python proto/generate.py

# Regenerates the settings tables in docs/configuration.md and docs/api.md.
docs: $(BIN)/python
	$(BIN)/python deploy/docgen.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache var
