# nntune: `make demo` tunes a built-in data set, `make test` runs the whole suite.
# Both bootstrap .venv from scratch with the exact tested versions in constraints.txt.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast lint clean bench-env bench-env-autogluon lock-autogluon

install: $(STAMP)

# uv installs the same pinned wheels as pip, in parallel: about 15 s instead of 3 minutes here.
# It reads no pip configuration, so the machine's pip find-links (where a local torch wheel lies)
# are passed on explicitly.
FIND_LINKS := $(or $(PIP_FIND_LINKS),$(shell $(PYTHON) -m pip config get global.find-links 2>/dev/null))
# --compile-bytecode as pip does: otherwise every first import in the suite compiles its modules.
UV_FLAGS := --quiet --compile-bytecode --python $(BIN)/python -c constraints.txt $(foreach d,$(FIND_LINKS),--find-links $(d))

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt uv
	$(BIN)/uv pip install $(UV_FLAGS) -e '.[dev,ray,postgres,dashboard,png,export,graph,mnist1d]'
	touch $(STAMP)

demo: install
	$(BIN)/nntune tune --dataset breast_cancer --trials 20 --timeout 2m --out runs/demo --study demo --resume
	@echo "more: $(BIN)/nntune show runs/demo (top-10 trials), runs/demo/report.html (the report), runs/demo/model (the saved model)"

# Two worker processes (one a core on a 2-core machine: -n auto), each test on one of them.
test: install
	$(BIN)/python -m pytest -q -n auto --dist worksteal --durations=25

test-fast: install
	$(BIN)/python -m pytest -q -n auto -m "not slow"

lint: install
	$(BIN)/ruff check src tests benchmarks

# The benchmarks' environment: the project plus what it is compared with, kept out of .venv so that their
# pins never touch it: the LCBench benchmark's reference searchers (DEHB, SMAC3) and the tabular benchmark's
# anchors (pytabkit's RealMLP and TabM). Always against constraints.txt, so torch stays at 2.13.0.
bench-env:
	$(PYTHON) -m venv .venv-bench
	.venv-bench/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e .
	.venv-bench/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -r benchmarks/requirements-lcbench.txt
	.venv-bench/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -r benchmarks/requirements-tabular.txt
	.venv-bench/bin/python -c "import torch; assert torch.__version__.split('+')[0] == '2.13.0', torch.__version__"

# The tabular benchmark's AutoGluon anchor (autogluon_nn) in an environment of its own, .venv-autogluon:
# autogluon.tabular 1.6.3 requires pandas<2.4 and pyarrow<25 (and, through boto3's botocore,
# python-dateutil<3), so it cannot share .venv-bench with constraints.txt. Everything there is pinned in
# benchmarks/requirements-autogluon.txt (constraints.txt where it agrees, torch 2.13.0 included), and nntune
# is installed too, since the benchmark's worker loads and splits the table with it. bench-env leaves it
# alone: it is a second, larger install (fastai, spaCy, torchvision) that only one anchor needs, and the
# benchmark records autogluon_nn as skipped, naming this target, where it is missing.
AG_VENV := .venv-autogluon
AG_REQ := benchmarks/requirements-autogluon.txt
AG_UV_FLAGS := --quiet --compile-bytecode --python $(AG_VENV)/bin/python -c $(AG_REQ) $(foreach d,$(FIND_LINKS),--find-links $(d))

bench-env-autogluon: $(AG_VENV)/.installed

$(AG_VENV)/.installed: $(AG_REQ) pyproject.toml
	$(PYTHON) -m venv $(AG_VENV)
	$(AG_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt uv
	$(AG_VENV)/bin/uv pip install $(AG_UV_FLAGS) -r $(AG_REQ) -e .
	$(AG_VENV)/bin/python -c "import torch; assert torch.__version__.split('+')[0] == '2.13.0', torch.__version__"
	$(AG_VENV)/bin/python -c "import sys, autogluon.tabular, fastai.tabular.all, nntune; assert 'torchvision' not in sys.modules"
	touch $@

# Regenerates benchmarks/requirements-autogluon.txt: autogluon.tabular[fastai] and nntune resolved together
# against constraints.txt less the pins AutoGluon cannot take (pandas, pyarrow, python-dateutil).
lock-autogluon: install
	grep -v -E '^(pandas|pyarrow|python-dateutil)==' constraints.txt > $(AG_VENV).constraints.tmp
	printf -- '-e .\nautogluon.tabular[fastai]==1.6.3\npandas<2.4\npyarrow<25\n' \
	  | $(BIN)/uv pip compile - --quiet --python-version 3.11 --no-header --no-annotate \
	      -c $(AG_VENV).constraints.tmp $(foreach d,$(FIND_LINKS),--find-links $(d)) \
	  | grep -v -E '^-e ' | sed -e 's/^torch==2.13.0+cpu$$/torch==2.13.0/' > $(AG_REQ).tmp
	rm $(AG_VENV).constraints.tmp
	{ sed -n '/^#/p' $(AG_REQ); cat $(AG_REQ).tmp; } > $(AG_REQ).new && rm $(AG_REQ).tmp && mv $(AG_REQ).new $(AG_REQ)

clean:
	rm -rf $(VENV) runs .pytest_cache
