# Préau — every target bootstraps what it needs on a fresh Debian 12 / Python 3.11 machine.
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
PREAU := $(VENV)/bin/preau
APT_STAMP := $(TOOLS)/.apt-$(shell echo "$(APT_PACKAGES)" | md5sum | cut -c1-8)
# Debian packages the tests need (each stage adds its own here).
APT_PACKAGES := libpq-dev chromium redis-server build-essential python3-dev

.PHONY: help venv demo test test-unit test-deps apt clean

help: ## Show the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | sort

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet "uv==$(UV_VERSION)"

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --all-groups --compile-bytecode --python $(PYTHON)
	@touch $@

venv: $(VENV)/.synced ## Create .venv with Préau and its locked dependencies

apt: ## Install the Debian packages the tests need (as root)
	@if [ -n "$(APT_PACKAGES)" ] && ! dpkg -s $(APT_PACKAGES) >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(APT_PACKAGES) >/dev/null; \
	fi

demo: venv node_modules ## Run the whole pipeline on the synthetic territory (output in _build/)
	$(PREAU) demo

test-deps: venv apt node_modules ckan-up $(TOOLS)/addok/bin/addok ## Install and start what the tests need

.PHONY: ckan-up ckan-down
ckan-up: ## Start the real CKAN 2.12 for tests: instances main (:5000) and peer (:5001), see catalog/README.md
	catalog/ckan-up.sh main 5000
	catalog/ckan-up.sh peer 5001

ckan-down: ## Stop the CKAN instances and the solrlite index started by ckan-up
	catalog/ckan-down.sh

test: test-deps ## Install what tests need, start it, run every test
	$(VENV)/bin/pytest -q

.PHONY: bench bench-quick
bench: test-deps ## Every benchmark at full size (national ≈12M pupils) beside its anchor → bench/results.{json,md}
	$(PY) bench/run.py $(if $(ONLY),--only $(ONLY))

bench-quick: test-deps ## Every benchmark at small size (< 5 min; CI runs it) → _build/bench-quick/results.{json,md}
	$(PY) bench/run.py --quick $(if $(ONLY),--only $(ONLY))

test-unit: venv ## Only the fast tests (no CKAN, no browser)
	$(VENV)/bin/pytest -q -m "not ckan and not browser and not addok and not slow"

# --- site: Leaflet (copied into the built site) and axe-core (browser tests), from npm, locked
.PHONY: node_modules bench-site
node_modules: node_modules/.installed ## JavaScript libraries of the site (npm ci, package-lock.json)

node_modules/.installed: package.json package-lock.json
	@command -v npm >/dev/null || { if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq nodejs npm >/dev/null; }
	npm ci --no-audit --no-fund
	@touch $@

bench-site: venv node_modules ## Site build speed: national-size synthetic catalog (SCHOOLS=48000)
	$(PY) bench/bench_site.py --schools $(or $(SCHOOLS),48000)

.PHONY: bench-publish
bench-publish: venv ckan-up ## CKAN publishing: Préau vs ckanapi load datasets, first and no-change runs (SCALE=20)
	$(PY) bench/bench_publish.py --scale $(or $(SCALE),20)

.PHONY: bench-disclosure
bench-disclosure: venv ## Secondary suppression + audit, Préau vs hypercube baseline (SCALE=0.02; SCALE=1 = national)
	$(PY) bench/bench_disclosure.py --scale $(or $(SCALE),0.02)

clean: ## Remove generated output
	rm -rf _build

# --- geo: addok (own virtualenv, PyPI addok + addok-fr + addok-france + addok-csv) and Redis, for the
# adapter tests (marker addok, Redis started by the test fixture on a loopback port) and the bench
ADDOK_VENV := $(TOOLS)/addok
.PHONY: bench-geo-deps bench-geo

# python-geohash (an addok dependency) is built from source: needs build-essential + python3-dev (apt).
$(ADDOK_VENV)/bin/addok: | apt
	$(PYTHON) -m venv $(ADDOK_VENV)
	$(ADDOK_VENV)/bin/pip install --quiet addok addok-fr addok-france addok-csv

bench-geo-deps: venv $(ADDOK_VENV)/bin/addok ## addok + Redis (geocoding bench; tests marked addok)
	@command -v redis-server >/dev/null || { if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq redis-server >/dev/null; }

bench-geo: bench-geo-deps ## Geocoding vs addok, sector assignment vs sjoin (N=20k; N=1000000 for the report)
	$(PY) bench/bench_geo.py --n $(or $(N),20000)
