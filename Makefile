# Two commands on a fresh machine:
#   make demo   creates .venv from the newest Python >= 3.12, builds the Swift core, runs the demo
#   make test   the same set-up, then pytest and `swift test`
# PY=python3.12 make test picks another interpreter; VENV=... another virtual environment.

PY ?=
PYTHON := $(shell scripts/find-python $(PY))
ifeq ($(PYTHON),)
$(error no Python >= 3.12 found (PY=$(PY)); own-GIL interpreters need 3.12+)
endif
PYTAG := $(shell $(PYTHON) -c 'import sys; print(f"{sys.version_info[0]}{sys.version_info[1]}")')
INCLUDE := $(shell $(PYTHON) -c 'import sysconfig; print(sysconfig.get_path("include"))')
VENV ?= .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-py$(PYTAG)
SWIFT ?= $(shell command -v swift 2>/dev/null || echo /opt/swift/usr/bin/swift)
EXTRAS ?= test,progress
PYTEST_ARGS ?= -m "not slow"
NATIVE_SOURCES := $(shell find Sources -type f) Package.swift setup.py pyproject.toml

.PHONY: all install demo demo-quick test pytest swift-test bench bench-quick bench-readme clean

all: test

install: $(STAMP)

# A venv made by another Python is rebuilt; the editable install keeps Python edits live,
# and any change to the Swift sources rebuilds the extension.
$(STAMP): $(NATIVE_SOURCES)
	@if [ -x $(VPY) ] && [ ! -f $(STAMP) ] && ls $(VENV)/.installed-py* >/dev/null 2>&1; then \
		echo "recreating $(VENV) for Python $(PYTAG)"; rm -rf $(VENV); fi
	@[ -x $(VPY) ] || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip "setuptools>=68" wheel
	SWIFT=$(SWIFT) $(VPY) -m pip install -q --no-build-isolation -e ".[$(EXTRAS)]"
	@touch $(STAMP)

demo: install
	$(VPY) demo.py

demo-quick: install
	$(VPY) demo.py --quick

test: pytest swift-test

pytest: install
	$(VPY) -m pytest $(PYTEST_ARGS)

# Builds only the test bundle (the runtime and its tests): the extension target needs
# Python's headers, and its debug build clashes with Glibc's module over fd_set.
swift-test:
	$(SWIFT) build --scratch-path .build-swift-test --product SubinterpreterParallelismPackageTests
	$(SWIFT) test --skip-build --scratch-path .build-swift-test

# The `bench` extra's packages only: reinstalling the project itself would rebuild the Swift core.
BENCH_REQUIREMENTS = $(VPY) -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["bench"]))'

$(VENV)/.bench-extras: $(STAMP) pyproject.toml
	$(BENCH_REQUIREMENTS) | $(VPY) -m pip install -q -r /dev/stdin
	@touch $@

# Every competitor, each workload in a fresh process: under 10 minutes on 2 cores.
bench: $(VENV)/.bench-extras
	$(VPY) -m subinterpreter_parallelism bench --json bench-results/latest.json --plot bench-results/latest.png

# Small sizes, one repeat: under a minute.
bench-quick: $(VENV)/.bench-extras
	$(VPY) -m subinterpreter_parallelism bench --quick --json bench-results/quick.json --plot bench-results/quick.png

# The README's figures and docs/bench-latest.png from the last `make bench` (nothing is re-measured).
bench-readme: $(VENV)/.bench-extras
	@test -f bench-results/latest.json || { echo "no bench-results/latest.json: run make bench first"; exit 1; }
	$(VPY) -m subinterpreter_parallelism bench --load bench-results/latest.json --plot docs/bench-latest.png --readme README.md

clean:
	rm -rf .build .build-py* build python/subinterpreter_parallelism/_native*.so *.egg-info python/*.egg-info
