# The README's two commands: `make run` and `make test`. Both install what they need.
PY ?= python3
PIP := $(PY) -m pip
EXTRAS ?= test,rocksdb

.PHONY: install system-deps run test unit integration

# Debian packages the project needs (Java for the local broker, Maven to fetch its jars).
system-deps:
	@bash deploy/install-system-deps.sh

install: system-deps
	$(PIP) install --quiet --disable-pip-version-check -e '.[$(EXTRAS)]'

run: install
	cxstream demo

test: install
	$(PY) -m pytest tests -q

unit: install
	$(PY) -m pytest tests/unit -q

integration: install
	$(PY) -m pytest tests/integration -q
