# The two commands: `make demo` and `make test`. Each does its own set-up (idempotent).
VENV := .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
export OMP_WAIT_POLICY := PASSIVE

.PHONY: setup demo test test-fast fuzz lint bench clean

setup:
	@flock /tmp/preproc-setup.lock bash scripts/setup.sh

demo: setup
	$(PY) -m preproc.demo

test: setup
	$(PY) -m ruff check .
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

# The reliability suite's long profile (thousands of cases, ~15 min on 2 cores); prints the
# cases tried and failed per kind and writes them to out/fuzz-report.json (docs/reliability.md).
fuzz: setup
	PREPROC_FUZZ_PROFILE=long PREPROC_FUZZ_REPORT=out/fuzz-report.json $(PY) -m pytest -q tests/fuzz

lint: setup
	$(PY) -m ruff check .

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
