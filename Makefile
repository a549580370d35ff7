# The two commands of the README: `make book` (set up, execute the notebooks, build the book)
# and `make test` (set up, run the unit tests and the notebook checks).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup book test clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e ".[book,test]"
	touch $@

book: setup
	$(PY) scripts/build_book.py

test: setup
	$(VENV)/bin/pytest --nbval

clean:
	rm -rf _build $(VENV)
