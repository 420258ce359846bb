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
APT_PACKAGES := libpq-dev

.PHONY: help venv demo test test-unit test-deps apt clean

help: ## Show the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | sort

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet "uv==$(UV_VERSION)"

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --all-groups --python $(PYTHON)
	@touch $@

venv: $(VENV)/.synced ## Create .venv with Préau and its locked dependencies

apt: ## Install the Debian packages the tests need (as root)
	@if [ -n "$(APT_PACKAGES)" ] && ! dpkg -s $(APT_PACKAGES) >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(APT_PACKAGES) >/dev/null; \
	fi

demo: venv ## Run the whole pipeline on the synthetic territory (output in _build/)
	$(PREAU) demo

test-deps: venv apt ## Install and start what the tests need

test: test-deps ## Install what tests need, start it, run every test
	$(VENV)/bin/pytest -q

test-unit: venv ## Only the fast tests (no CKAN, no browser)
	$(VENV)/bin/pytest -q -m "not ckan and not browser and not slow"

clean: ## Remove generated output
	rm -rf _build
