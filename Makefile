# The two commands: `make demo` and `make test`. Each does its own set-up (idempotent).
VENV := .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
export OMP_WAIT_POLICY := PASSIVE

.PHONY: setup demo test test-fast lint bench clean

setup:
	@flock /tmp/preproc-setup.lock bash scripts/setup.sh

demo: setup
	$(PY) -m preproc.demo

test: setup
	$(PY) -m ruff check .
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

lint: setup
	$(PY) -m ruff check .

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
