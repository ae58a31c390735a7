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

.PHONY: help venv system-deps ref-servers test lab lab-deps serve bench lint docs docs-serve clean

help:
	@echo "make test         ruff + mypy + the whole pytest suite (installs venv and chromium if needed)"
	@echo "                  PYTEST_ARGS='-k slider -x' to pass options to pytest"
	@echo "make lab          JupyterLab on notebooks/ at 127.0.0.1:\$$LAB_PORT (default 8888), with"
	@echo "                  what the notebooks need (lab, redis, dask extras; redis-server)"
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
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadgroup --durations=25 $(PYTEST_ARGS)

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

# Everything a notebook needs and nothing more: the lab, redis (07) and dask (04's
# bigger sweeps) extras and the redis-server 07 starts. Installers write to
# $(LAB_LOG), not the terminal; a failure shows the log's tail. JupyterLab's own log
# goes to $(LAB_SERVER_LOG), so the URL is the last thing printed.
LAB_STAMP      := $(VENV)/.lab-stamp
LAB_LOG        := $(VENV)/lab-install.log
LAB_SERVER_LOG := $(VENV)/lab-server.log

lab-deps: $(LAB_STAMP)
	@command -v redis-server >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; \
	  elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"; \
	  else echo "make lab: notebook 07 needs redis-server: install it (Debian: apt-get install redis-server)" >&2; exit 0; fi; \
	  echo "make lab: installing redis-server (notebook 07)"; \
	  { $$SUDO apt-get update -q && $$SUDO env DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -q redis-server; } >>$(LAB_LOG) 2>&1 \
	  || { tail -n 15 $(LAB_LOG); echo "make lab: installing redis-server failed (log: $(LAB_LOG))" >&2; exit 1; }; }

$(LAB_STAMP): pyproject.toml
	@if ! $(BIN)/python -c 'import sys' >/dev/null 2>&1; then $(BOOTSTRAP_PYTHON) -m venv $(VENV); fi
	@if [ -f $(STAMP) ] && [ $(STAMP) -nt pyproject.toml ]; then touch $@; exit 0; fi; \
	echo "make lab: installing the notebooks' Python packages (log: $(LAB_LOG))"; \
	{ $(BIN)/python -m pip install --upgrade pip && \
	  $(BIN)/python -m pip install -e '.[lab,redis,dask,otel]'; } >$(LAB_LOG) 2>&1 \
	|| { tail -n 15 $(LAB_LOG); echo "make lab: pip install failed (log: $(LAB_LOG))" >&2; exit 1; }; \
	touch $@

lab: lab-deps
	@token="$(LAB_TOKEN)"; \
	[ -n "$$token" ] || token="$$($(BIN)/python -c 'import secrets; print(secrets.token_hex(24))')"; \
	root_flag=""; [ "$$(id -u)" = 0 ] && root_flag="--allow-root"; \
	$(BIN)/python -c "$$LAB_OVERRIDES"; \
	$(BIN)/python -m jupyterlab --no-browser --ip=127.0.0.1 --port=$(LAB_PORT) \
	  --ServerApp.port_retries=0 --IdentityProvider.token="$$token" \
	  --notebook-dir="$(CURDIR)/notebooks" \
	  --LabApp.news_url=None \
	  --LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate $$root_flag \
	  >$(LAB_SERVER_LOG) 2>&1 & pid=$$!; \
	trap 'kill $$pid 2>/dev/null; wait $$pid 2>/dev/null' INT TERM; \
	$(BIN)/python -c "$$LAB_WAIT_READY" "http://127.0.0.1:$(LAB_PORT)/api/status?token=$$token" $$pid \
	  || { tail -n 15 $(LAB_SERVER_LOG); echo "make lab: JupyterLab did not start (log: $(LAB_SERVER_LOG))" >&2; kill $$pid 2>/dev/null; exit 1; }; \
	echo ""; \
	echo "  JupyterLab is ready: http://127.0.0.1:$(LAB_PORT)/lab?token=$$token"; \
	echo "  (open that URL in your browser; Ctrl-C here stops it; its log: $(LAB_SERVER_LOG))"; \
	echo ""; \
	wait $$pid

# Polls JupyterLab's status URL (argv[1]) until it answers; fails if process argv[2] ends.
define LAB_WAIT_READY
import os, sys, time, urllib.request
url, pid = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit(1)
    try:
        with urllib.request.urlopen(url, timeout=2):
            sys.exit(0)
    except OSError:
        time.sleep(0.2)
sys.exit(1)
endef
export LAB_WAIT_READY

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
