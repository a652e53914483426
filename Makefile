# Two entry points for a fresh machine: `make demo` and `make test`.
VENV := .venv
BIN := $(VENV)/bin
SRC := langchain_metallm tests examples benchmarks

$(BIN)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[test,bench]"
	touch $@

.PHONY: setup demo test bench
setup: $(BIN)/.installed

demo: setup
	HF_HUB_OFFLINE=1 $(BIN)/python examples/gsm8k_replay.py

test: setup
	$(BIN)/ruff check $(SRC)
	$(BIN)/ruff format --check $(SRC)
	$(BIN)/mypy langchain_metallm
	HF_HUB_OFFLINE=1 $(BIN)/pytest -q tests

bench: setup
	$(BIN)/python benchmarks/overhead.py
