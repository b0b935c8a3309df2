# The README's two commands: `make run` and `make test`. Both install what they need.
PY ?= python3
PIP := $(PY) -m pip
EXTRAS ?= test,rocksdb

.PHONY: install system-deps run test unit integration audit lock

# Debian packages the project needs (Java for the local broker, Maven to fetch its jars).
system-deps:
	@bash deploy/install-system-deps.sh

install: system-deps
	$(PIP) install --quiet --disable-pip-version-check -c constraints.txt -e '.[$(EXTRAS)]'

# Known vulnerabilities in the pinned runtime dependencies (PyPI's vulnerability service;
# fails when it cannot be reached). See docs/development/dependencies.md.
audit:
	$(PIP) install --quiet --disable-pip-version-check -c constraints.txt pip-audit
	$(PY) .ci/audit.py requirements-runtime.txt

# Rewrite constraints.txt and requirements-runtime.txt from the installed (tested) packages.
lock:
	$(PY) deploy/lock_deps.py

run: install
	cxstream demo

test: install
	$(PY) -m pytest tests -q

unit: install
	$(PY) -m pytest tests/unit -q

integration: install
	$(PY) -m pytest tests/integration -q
