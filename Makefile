# Two commands: `make run` and `make test`. Everything else is installed on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint typecheck unit bench clean contracts

# The main job: the bot of config.yaml, by default in sandbox mode (anvil with the real Uniswap v3
# contracts, Binance and Alpaca emulators, the sample market replayed 300x), until Ctrl-C.
# `make run DURATION=60` stops by itself after 60 s (docs/running.md).
DURATION ?=
run: $(VENV)/.installed node_modules/.installed
	$(BIN)/perpetua run config.yaml $(if $(DURATION),--duration $(DURATION))

test: $(VENV)/.installed-dev node_modules/.installed lint typecheck unit

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

unit: $(VENV)/.installed-dev node_modules/.installed
	$(BIN)/pytest -q

bench: $(VENV)/.installed-bench .venv-peers/.installed
	$(BIN)/python -m benchmarks

$(VENV)/bin/pip:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(VENV)/bin/pip
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(VENV)/bin/pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@ $(VENV)/.installed

$(VENV)/.installed-bench: pyproject.toml | $(VENV)/bin/pip
	$(BIN)/pip install -q -e '.[dev,bench]'
	touch $@ $(VENV)/.installed $(VENV)/.installed-dev

# Benchmark peers that pin other numpy/pandas versions live in their own virtualenv.
.venv-peers/.installed: benchmarks/peers/requirements.txt
	$(PYTHON) -m venv .venv-peers
	.venv-peers/bin/pip install -q -r benchmarks/peers/requirements.txt
	touch $@

# The anvil binary ships in an optional platform package: never pass --omit=optional.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

# The project's own contracts: artifacts are committed; rebuild them after editing contracts/*.sol.
contracts: node_modules/.installed
	node contracts/build.mjs

clean:
	rm -rf $(VENV) .venv-peers node_modules .mypy_cache .ruff_cache .pytest_cache build *.egg-info
