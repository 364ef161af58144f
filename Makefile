# Two commands set everything up on a fresh machine (see README):
#   make demo   create .venv, install, migrate the embedded store, build and load the demo ACKB,
#               train the SAR retriever on it
#   make test   create .venv, install, run the whole test suite
# Both are idempotent: the venv is reinstalled only when pyproject.toml changes.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: demo test install benchmark clean-venv

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

install: $(INSTALLED)

demo: $(INSTALLED)
	$(BIN)/kdcvg kb demo
	$(BIN)/kdcvg retrieval train --if-changed

# pytest exits 5 when it collected no test: that is a failure of the suite, not a pass.
test: $(INSTALLED)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

benchmark: $(INSTALLED)
	$(BIN)/python benchmarks/kb_load.py

clean-venv:
	rm -rf $(VENV)
