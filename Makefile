# Everything a fresh machine needs is installed by these targets; nothing by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY_STAMP := $(VENV)/.installed
NODE_DIR := couch/embedded
NODE_STAMP := $(NODE_DIR)/node_modules/.installed
AJV_DIR := tests/ajv
AJV_STAMP := $(AJV_DIR)/node_modules/.installed

.PHONY: install run test lint bench bench-amqp bench-cluster bench-big-trunk soak mutation clean

MINUTES ?= 2

install: $(PY_STAMP) $(NODE_STAMP) $(AJV_STAMP)

$(PY_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

$(NODE_STAMP): $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund --prefix $(NODE_DIR)
	touch $@

# ajv (draft-04), the second validator tests/test_schema_cross_check.py runs on the schema.
$(AJV_STAMP): $(AJV_DIR)/package.json $(AJV_DIR)/package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund --prefix $(AJV_DIR)
	touch $@

run: install
	$(BIN)/kazoo-connectivity serve

lint: install
	$(BIN)/ruff check .

test: install lint
	$(BIN)/pytest -q

# Not part of `make test`: the service next to raw CouchDB, ~10 min; QUICK=1 ~3 min.
# CONNECTIVITY_COUCH_URL=http://admin:secret@host:5984 measures against Apache CouchDB.
bench: install
	$(BIN)/python -m bench $(if $(filter 1 yes true,$(QUICK)),--quick)

# Not part of `make test`: the added cost of AMQP change events per write (needs a broker:
# the machine's RabbitMQ, or CONNECTIVITY_BENCH_AMQP_URL); QUICK=1 ~1 min.
bench-amqp: install
	$(BIN)/python -m bench.amqp $(if $(filter 1 yes true,$(QUICK)),--quick)

# Not part of `make test`: one trunk of DIDS DIDs (50,000) PUT, read, replaced, patched and
# listed while other requests are timed; CONNECTIVITY_COUCH_URL=… measures Apache CouchDB.
DIDS ?= 50000
bench-big-trunk: install
	$(BIN)/python -m bench.big_trunk --dids $(DIDS)

# Not part of `make test`: mixed traffic for MINUTES, the embedded CouchDB killed halfway.
soak: install
	$(BIN)/python -m bench.soak --minutes $(MINUTES)

# Not part of `make test`: INSTANCES services over the CouchDB cluster behind CLUSTER_URL (a
# balancer, admin credentials) for MINUTES; KILL_CMD runs halfway, RESTART_CMD 30 s later;
# every acknowledged write is then read back from each of VERIFY_URLS (default CLUSTER_URL).
INSTANCES ?= 2
bench-cluster: install
	test -n '$(CLUSTER_URL)' || { echo 'CLUSTER_URL=http://admin:...@host:port is required'; exit 2; }
	$(BIN)/python -m bench.cluster --couch-url '$(CLUSTER_URL)' --instances $(INSTANCES) \
		--minutes $(MINUTES) $(if $(KILL_CMD),--kill-cmd '$(KILL_CMD)') \
		$(if $(RESTART_CMD),--restart-cmd '$(RESTART_CMD)') \
		$(foreach url,$(VERIFY_URLS),--verify-url '$(url)')

# Not part of `make test`: mutants of the pure KAZOO-rule modules ([tool.mutmut] in
# pyproject.toml), killed by the pure unit tests alone; ~10 min on one core.
JOBS ?= 1
mutation: install
	$(BIN)/pip install --quiet --disable-pip-version-check 'mutmut>=3.3,<4'
	rm -rf mutants
	nice -n 19 $(BIN)/mutmut run --max-children $(JOBS)
	$(BIN)/mutmut results --all true | $(BIN)/python tests/mutation/report.py

clean:
	rm -rf mutants $(VENV) $(NODE_DIR)/node_modules $(AJV_DIR)/node_modules .pytest_cache .ruff_cache
