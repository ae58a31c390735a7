# cblab — developer entry points. `make test` is what CI runs (.ci/run).
SHELL := /bin/bash
.DEFAULT_GOAL := help

BOOTSTRAP_PYTHON ?= python3
VENV        := .venv
BIN         := $(VENV)/bin
STAMP       := $(VENV)/.stamp
CHROMIUM    := /usr/bin/chromium
PYTEST_ARGS ?=
# Workers for pytest-xdist: most tests wait on servers, kernels and browsers, so three
# keep 2 cores busy; modules stay whole on a worker, browser modules share one.
PYTEST_WORKERS ?= 3
SERVE_ARGS  ?=
BENCH       ?=
LAB_PORT    ?= 8888
LAB_TOKEN   ?=
DOCS_PORT   ?= 8001

.PHONY: help venv system-deps ref-servers test lab serve bench lint docs docs-serve clean

help:
	@echo "make test         ruff + mypy + the whole pytest suite (installs venv and chromium if needed)"
	@echo "                  PYTEST_ARGS='-k slider -x' to pass options to pytest"
	@echo "make lab          JupyterLab on notebooks/ at 127.0.0.1:\$$LAB_PORT (default 8888)"
	@echo "make serve        the demo MCP server (cblab serve \$$SERVE_ARGS)"
	@echo "make bench        benchmarks/bench_*.py (BENCH='name ...' for some)"
	@echo "make docs         the docs site into build/site (opens from disk: build/site/index.html)"
	@echo "make docs-serve   the docs site on 127.0.0.1:\$$DOCS_PORT (default 8001), rebuilt on change"
	@echo "make lint         ruff check + mypy (config in pyproject.toml; strict on the core)"
	@echo "make system-deps  Debian chromium + fonts (browser tests, static images), redis-server, prometheus"
	@echo "make ref-servers  the official reference MCP servers (registry packages) the tests run against"
	@echo "make clean        remove .venv, caches and artifacts/"

# The venv is (re)installed only when pyproject.toml is newer than the stamp.
venv: $(STAMP)

$(STAMP): pyproject.toml
	@if ! $(BIN)/python -c 'import sys' >/dev/null 2>&1; then \
	  echo "creating $(VENV) with $$($(BOOTSTRAP_PYTHON) --version)"; \
	  $(BOOTSTRAP_PYTHON) -m venv $(VENV); \
	fi
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	@touch $@

# Debian's chromium for playwright (never playwright's own download) and kaleido.
system-deps:
	@missing=""; \
	[ -x $(CHROMIUM) ] || missing="chromium fonts-liberation"; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	command -v promtool >/dev/null 2>&1 || missing="$$missing prometheus"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; \
	  elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"; \
	  else echo "system-deps: need root or sudo to install: $$missing" >&2; exit 1; fi; \
	  echo "system-deps: installing $$missing"; \
	  $$SUDO apt-get update -q && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi; \
	[ -x $(CHROMIUM) ] || { echo "system-deps: $(CHROMIUM) still missing" >&2; exit 1; }; \
	command -v redis-server >/dev/null 2>&1 || { echo "system-deps: redis-server still missing" >&2; exit 1; }; \
	command -v promtool >/dev/null 2>&1 || { echo "system-deps: prometheus still missing" >&2; exit 1; }

# Reference MCP servers nobody here wrote, installed from the registries into their own
# environments (their pins must not move the project's mcp/fastmcp): PyPI's time, git
# and fetch servers, one venv each, and npm's "everything" server. Tests find them
# with cblab.testing.reference (REF_DIR); never installed at test time.
REF_DIR     := $(VENV)/ref
REF_STAMP   := $(REF_DIR)/.stamp
REF_PYPI    := mcp-server-time mcp-server-git mcp-server-fetch
REF_NPM     := @modelcontextprotocol/server-everything@2026.8.31

ref-servers: $(REF_STAMP)

$(REF_STAMP): Makefile
	@mkdir -p $(REF_DIR)
	@for pkg in $(REF_PYPI); do \
	  [ -x $(REF_DIR)/$$pkg/bin/$$pkg ] || { \
	    $(BOOTSTRAP_PYTHON) -m venv $(REF_DIR)/$$pkg && \
	    $(REF_DIR)/$$pkg/bin/python -m pip install --quiet $$pkg; } || exit 1; \
	done
	@command -v npm >/dev/null 2>&1 || { echo "ref-servers: npm missing (Debian: nodejs npm)" >&2; exit 1; }
	npm install --silent --no-audit --no-fund --prefix $(REF_DIR)/npm $(REF_NPM)
	@touch $@

test: venv system-deps ref-servers
	$(BIN)/ruff check cblab tests benchmarks
	$(BIN)/mypy
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check cblab tests benchmarks
	$(BIN)/mypy

# No "get notified about official Jupyter news?" prompt and no update check: JupyterLab
# reads defaults from <venv>/share/jupyter/lab/settings/overrides.json (merged, not replaced).
define LAB_OVERRIDES
import json, sys, pathlib
path = pathlib.Path(sys.prefix, "share/jupyter/lab/settings/overrides.json")
path.parent.mkdir(parents=True, exist_ok=True)
data = json.loads(path.read_text()) if path.exists() else {}
data.setdefault("@jupyterlab/apputils-extension:notification", {}).update(fetchNews="false", checkForUpdates=False)
path.write_text(json.dumps(data, indent=2))
endef
export LAB_OVERRIDES

lab: venv
	@token="$(LAB_TOKEN)"; \
	[ -n "$$token" ] || token="$$($(BIN)/python -c 'import secrets; print(secrets.token_hex(24))')"; \
	root_flag=""; [ "$$(id -u)" = 0 ] && root_flag="--allow-root"; \
	$(BIN)/python -c "$$LAB_OVERRIDES"; \
	echo ""; \
	echo "  JupyterLab: http://127.0.0.1:$(LAB_PORT)/lab?token=$$token"; \
	echo "  (open that URL; Ctrl-C here stops the server)"; \
	echo ""; \
	exec $(BIN)/jupyter lab --no-browser --ip=127.0.0.1 --port=$(LAB_PORT) \
	  --ServerApp.port_retries=0 --IdentityProvider.token="$$token" \
	  --notebook-dir="$(CURDIR)/notebooks" \
	  --LabApp.news_url=None \
	  --LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate $$root_flag

# NO_MKDOCS_2_WARNING: Material prints a banner about MkDocs 2 on every build.
docs: venv
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict
	@echo "docs: open build/site/index.html"

docs-serve: venv
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --strict -a 127.0.0.1:$(DOCS_PORT)

serve: venv
	$(BIN)/cblab serve $(SERVE_ARGS)

bench: venv
	BENCH="$(BENCH)" $(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis artifacts build *.egg-info
	find . -path ./.git -prune -o \
	  \( -name __pycache__ -o -name .ipynb_checkpoints \) -type d -prune -exec rm -rf {} +
