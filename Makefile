# Every target creates the virtual environment from the pinned files first (idempotent).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# The demo and the UI share one Dagster instance so the demo's runs are there to browse; tests use temporary ones.
DAGSTER_HOME_DIR ?= $(CURDIR)/.dagster_home

.PHONY: setup system demo test ui bench docs clean

setup: system $(VENV)/.installed

system:  ## Debian's chromium and poppler-utils (PDF reports, rendering checks); installs what is missing
	bash scripts/system-packages.sh

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==26.3
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e '.[dev]'
	touch $@

demo: setup $(DAGSTER_HOME_DIR)/dagster.yaml  ## generate the SYNTHETIC demo data and materialize the whole pipeline on it
	DAGSTER_HOME=$(DAGSTER_HOME_DIR) $(BIN)/epiatlas demo --out demo_data

# The demo's instance logs Dagster's own messages from INFO up: its DEBUG events stay in the UI, off the console.
$(DAGSTER_HOME_DIR)/dagster.yaml:
	mkdir -p $(DAGSTER_HOME_DIR)
	printf 'python_logs:\n  python_log_level: INFO\n' > $@

test: setup  ## run the test suite
	$(BIN)/pytest -q

ui: setup  ## open the Dagster UI on the demo warehouse (run `make demo` first)
	mkdir -p $(DAGSTER_HOME_DIR)
	DAGSTER_HOME=$(DAGSTER_HOME_DIR) EPIATLAS_CONFIG=$(CURDIR)/demo_data/config.yaml \
		$(BIN)/dagster dev -m orchestration.definitions

bench: setup  ## performance figures (see README); installs the peers measured side by side
	$(BIN)/pip install --quiet --no-deps grad-cam==1.5.7 ttach==0.0.3 opencv-python-headless==5.0.0.93
	$(BIN)/python benchmarks/bench_outcomes_10m.py

docs: setup  ## regenerate docs/contracts.md from data_contracts/
	$(BIN)/epiatlas contracts-docs --out docs/contracts.md

clean:
	rm -rf demo_data .dagster_home
