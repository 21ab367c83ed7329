# mGRADE-HW co-simulation. The two commands a user needs:
#   make sim TEST=gsc_stream   RTL vs bit-accurate model on a real stream, in Verilator
#   make test                  ruff, then the whole test suite (fixed-point, sim, models, RTL regression, notebooks)
SHELL := /bin/bash
PY_SYS ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export PATH := $(CURDIR)/tools:$(CURDIR)/$(VENV)/bin:$(PATH)
export PYTHONDONTWRITEBYTECODE := 1
TEST   ?=
JOBS   ?= $(shell nproc)

.PHONY: help venv test test-fast lint sim regress bench report notebooks clean

help:
	@echo "make sim TEST=<stream>   co-simulate RTL vs sim/ (make sim TEST=list shows the streams)"
	@echo "      ... BUNDLE=f.npz   with your own exported weight bundle (make regress STREAMS=... BUNDLE=f.npz too)"
	@echo "      ... MICRO=simd=8   at another RTL microarchitecture (input columns per cycle, rtl/microarch.py;"
	@echo "                         default the fastest to simulate, MICRO=original the one-column design)"
	@echo "make test                install what is missing, lint (ruff), run the test suite"
	@echo "make lint                ruff check (configured in pyproject.toml)"
	@echo "make regress             long RTL-vs-model regressions (many clips) on a local Dask cluster"
	@echo "      ... SCHEDULER=tcp://HOST:8786   on a running Dask cluster instead (or MGRADE_SCHEDULER=...)"
	@echo "make bench               throughput of sim/, PyTorch and the RTL (RTL: MICRO=... against the original design)"
	@echo "make report              Yosys area against cycles per step over microarchitectures (MICRO=... for one)"
	@echo "make notebooks           run the noise studies in their full setting"

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PY_SYS) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip >/dev/null
	$(PY) -m pip install -q -e ".[test]"
	@touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -n $(JOBS) --dist loadgroup -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -x -m "not rtl and not notebooks"

lint: $(STAMP)
	$(VENV)/bin/ruff check .

BUNDLE ?=
BUNDLE_ARG = $(if $(BUNDLE),--bundle $(BUNDLE))
MICRO ?=
MICRO_ARG = $(if $(MICRO),--micro $(MICRO))

sim: $(STAMP)
	$(PY) -m testbenches.run $(TEST) $(BUNDLE_ARG) $(MICRO_ARG)

regress: $(STAMP)
	$(PY) -m testbenches.regress $(BUNDLE_ARG) $(MICRO_ARG) $(if $(STREAMS),--streams $(STREAMS)) $(if $(SCHEDULER),--scheduler $(SCHEDULER))

bench: $(STAMP)
	$(PY) -m benchmarks.run $(MICRO_ARG)

report: $(STAMP)
	$(PY) -m rtl.report $(MICRO_ARG)

notebooks: $(STAMP)
	MGRADE_NB_SETTING=full $(PY) -m analysis.run_notebooks

clean:
	rm -rf build sim_build .pytest_cache .hypothesis
