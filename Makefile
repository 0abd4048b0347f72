# nntune: `make demo` tunes a built-in data set, `make test` runs the whole suite.
# Both bootstrap .venv from scratch with the exact tested versions in constraints.txt.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast lint clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev,ray,postgres,dashboard,png]'
	touch $(STAMP)

demo: install
	$(BIN)/nntune tune --dataset breast_cancer --trials 20 --timeout 2m --out runs/demo --study demo --resume
	@echo "more: $(BIN)/nntune show runs/demo (top-10 trials), runs/demo/report.html (the report), runs/demo/model (the saved model)"

test: install
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

lint: install
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache
