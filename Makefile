# Two commands do all set-up on a fresh machine: `make test` and `make demo`.
# Both create .venv once and reuse it; the stamp file is rebuilt only when
# pyproject.toml changes.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.seedlock-installed
# CPU wheel on disk; installed before anything that depends on torch so pip
# never resolves a CUDA build from the registry.
TORCH  := torch==2.13.0

.PHONY: venv test test-fast fuzz coinstall reproduce-quick demo lint clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e '.[train,dev,openvino]'
	touch $(STAMP)

test: lint
	$(PY) -m pytest -q -m "not coinstall and not reproduce"

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

# seedlock installed next to the newest tritonclient, kserve and mlserver, in
# fresh venvs from PyPI (network-bound: a CI step of its own, not in `make test`).
coinstall: $(STAMP)
	$(PY) -m pytest -q -m coinstall tests/test_coinstall.py

# Every `seedlock reproduce NAME --quick` run, checked (tests/test_reproduce_*.py):
# six thesis experiments of up to 4 minutes each, a CI step of its own so that
# `make test` stays under 15 minutes on 2 cores.
reproduce-quick: $(STAMP)
	$(PY) -m pytest -q -m reproduce

# The fuzz suite at a larger example count than `make test` runs it, searching
# new examples each run (`make test` replays a fixed, derandomized set).
fuzz: $(STAMP)
	SEEDLOCK_FUZZ_EXAMPLES=$${SEEDLOCK_FUZZ_EXAMPLES:-400} SEEDLOCK_FUZZ_RANDOM=1 $(PY) -m pytest -q -m fuzz tests/test_fuzz.py

# ruff, then the layering contracts (tests/test_layering.py) fail `make test` on a violation.
lint: $(STAMP)
	$(VENV)/bin/ruff check .

demo: $(STAMP)
	$(VENV)/bin/seedlock demo

clean:
	rm -rf runs repository .pytest_cache
