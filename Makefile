# Two set-up commands: `make demo` and `make test`. Each builds what it needs on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
REFSTAGE := $(VENV)/bin/refstage
# Databases the Python suite runs against: "sqlite", "postgresql" or both.
TEST_DATABASES ?= sqlite
POSTGRES_TEST_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
PYTEST_ARGS ?=

.PHONY: demo test lint-imports test-python test-lwc venv node browser clean bench preview

# The product and, beside it, the development kit (emulators, demo, bench; backend/devkit) that production leaves out.
$(VENV)/.installed: pyproject.toml backend/devkit/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[test]' -e backend/devkit
	touch $@

venv: $(VENV)/.installed

node_modules/.installed: package.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

node: node_modules/.installed

# The record page preview: the package's LWCs compiled onto the open-source engine, served by the emulated org.
PREVIEW := backend/refstage_devkit/emulators/salesforce/preview
$(PREVIEW)/dist/preview.js: node_modules/.installed scripts/build-preview.mjs $(shell find lwc $(PREVIEW)/src sfdx/force-app/main/default/labels -type f 2>/dev/null)
	npm run --silent build:preview

preview: $(PREVIEW)/dist/preview.js

demo: venv preview
	$(REFSTAGE) demo

test: test-python test-lwc

# Browser tests drive Debian's Chromium through Playwright; no browser download. Installed when we
# can (root with apt); without it the browser tests skip and say why.
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "warning: could not install chromium; browser tests will skip"; \
	  else echo "note: /usr/bin/chromium missing and not root; browser tests will skip"; fi; \
	fi

# The layering contracts (import-linter, [tool.importlinter] in pyproject.toml) run first.
lint-imports: venv
	$(VENV)/bin/lint-imports --no-cache

test-python: venv node browser lint-imports preview
	@set -e; for db in $(TEST_DATABASES); do \
	  if [ "$$db" = postgresql ]; then url="$(POSTGRES_TEST_URL)"; else url=""; fi; \
	  echo "== Python suite on $$db"; \
	  REFSTAGE_TEST_DATABASE_URL="$$url" $(PY) -m pytest $(PYTEST_ARGS); \
	done

test-lwc: node
	npm test

bench: venv
	$(REFSTAGE) bench

clean:
	rm -rf $(VENV) node_modules instance test-artifacts $(PREVIEW)/dist
