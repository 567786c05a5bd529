# Two commands on a fresh machine with only Python 3.11: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test test-all bench clean

# Idempotent: creates .venv on first use and (re)installs only when pyproject.toml changed.
setup: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found: install Python 3.11 (or run make PYTHON=/path/to/python3.11)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

run: setup
	$(BIN)/streamlit run app.py

test: setup
	$(BIN)/python -m pytest -q

# Includes the slow accuracy checks (minutes).
test-all: setup
	$(BIN)/python -m pytest -q -m 'slow or not slow'

bench: setup
	$(BIN)/python benchmarks/bench_sweep.py
	$(BIN)/python benchmarks/bench_federated.py  # makes benchmarks/.venv-flower (Flower) on first use
	$(BIN)/python benchmarks/bench_decide.py
	$(BIN)/python benchmarks/bench_audit.py
	$(BIN)/python benchmarks/bench_batched.py  # 45-run adult sweep: engine (batched) vs Opacus tutorial vs non-private (issue 14)
	$(BIN)/python benchmarks/bench_calibration.py  # PRV noise calibration: the engine's search vs Opacus' bisection (issue 14)
	$(BIN)/python benchmarks/bench_batched_baseline.py  # 9 adult baseline runs: one at a time vs one batched pass (issue 14)
	$(BIN)/python benchmarks/bench_batched_clients.py  # one fed-dp-sgd run on adult: clients one at a time (Opacus) vs one stacked pass (issue 14)
	FRONTIER_BATCHED_DP_SGD=0 $(BIN)/python benchmarks/bench_ray.py  # here vs one- and two-node local Ray clusters (issue 17)

clean:
	rm -rf $(VENV) .frontier .pytest_cache
