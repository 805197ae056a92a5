# The two commands a newcomer needs: `make serve` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: serve test lint types imports check schema schema-check clean-venv browser image image-smoke deploy-check

$(STAMP): pyproject.toml client/pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[flavors,dev]'   # flavors: XGBoost, LightGBM, ONNX
	$(PY) -m pip install --quiet -e './client[sklearn,pandas]'   # the Python client and its `sp` command
	@touch $(STAMP)

serve: $(STAMP)
	$(PY) scripts/serve.py

# The admin chart test drives Debian's chromium through Playwright (never a browser download).
browser:
	@test -x /usr/bin/chromium || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq chromium; } \
	  || echo "chromium missing: 'sudo apt-get install chromium' (the browser test is skipped until then)"

test: $(STAMP) browser
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .

types: $(STAMP)
	SECRET_KEY=type-check $(PY) -m mypy

imports: $(STAMP)
	$(VENV)/bin/lint-imports

# What .ci/run checks besides the tests: each runs even when another failed.
check: $(STAMP)
	@status=0; \
	$(MAKE) --no-print-directory lint || status=1; \
	$(MAKE) --no-print-directory types || status=1; \
	$(MAKE) --no-print-directory imports || status=1; \
	exit $$status

schema: $(STAMP)
	SECRET_KEY=schema-check $(PY) manage.py spectacular --validate --fail-on-warn --file /dev/null

# The document against a live server: schemathesis for a few minutes (SCHEMA_CHECK_MAX_TIME_S, default 150).
schema-check: schema
	$(PY) scripts/schema_check.py

clean-venv:
	rm -rf $(VENV)

# Packaging (docker/README.md, deploy/README.md). `make image` needs podman (apt-get install -y podman buildah
# podman-compose debootstrap runc) and, the first time, root to build the stand-in base image.
image:
	docker/build-image.sh

image-smoke: image
	docker/smoke.sh

deploy-check:
	deploy/check.sh
