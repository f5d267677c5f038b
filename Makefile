# The whole set-up on a fresh machine with Python 3.11: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# numba compiles once per checkout and keeps its cache beside the code. numba's own check of a
# cached kernel looks only at the kernel's file, not at the kernels it calls in other files, so
# the cache folder is keyed by a hash of every file that defines kernels: a change anywhere
# among them compiles afresh instead of running stale machine code.
KERNEL_HASH := $(shell grep -rl --include='*.py' 'fusion.jit import' fusion sensors 2>/dev/null \
	| LC_ALL=C sort | xargs cat 2>/dev/null | sha1sum | cut -c1-12)
export NUMBA_CACHE_DIR ?= $(CURDIR)/.numba_cache/$(KERNEL_HASH)

.PHONY: demo test lint bench clean install install-dev

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/activate
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: $(VENV)/.installed
	$(BIN)/fusion demo

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint browser
	$(BIN)/python -m pytest -q

bench: $(VENV)/.installed-dev
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) .numba_cache .pytest_cache

# The map's browser test needs Debian's chromium (never a Playwright download). Installed only
# when missing and when we are root (CI); elsewhere the browser test skips and says why.
browser:
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		{ apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; } \
		|| echo "chromium could not be installed: the map browser test will skip"; \
	fi
