# Everything a fresh machine needs is installed by these targets; nothing by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY_STAMP := $(VENV)/.installed
NODE_DIR := couch/embedded
NODE_STAMP := $(NODE_DIR)/node_modules/.installed

.PHONY: install run test lint bench clean

install: $(PY_STAMP) $(NODE_STAMP)

$(PY_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

$(NODE_STAMP): $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund --prefix $(NODE_DIR)
	touch $@

run: install
	$(BIN)/kazoo-connectivity serve

lint: install
	$(BIN)/ruff check .

test: install lint
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) $(NODE_DIR)/node_modules .pytest_cache .ruff_cache
