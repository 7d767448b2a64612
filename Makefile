# kserve-warden — the two entry points of README.md, and their set-up.
#   make demo   set up a virtualenv and run the demo on the local sandbox
#   make test   set up, install the system tools the tests use, lint (ruff, import-linter's
#               contracts in pyproject.toml), type-check, build the real control plane, test
#               (both tiers: the stand-in API and the real kube-apiserver)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: setup system-deps demo test lint typecheck unit bench clean

$(VENV)/.installed: pyproject.toml
	PYTHON=$(PYTHON) bash scripts/venv.sh $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

setup: $(VENV)/.installed

system-deps:
	bash scripts/system-deps.sh

demo: setup
	$(VENV)/bin/kserve-warden demo --log-format console

lint: setup
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports

typecheck: setup
	$(PY) -m mypy

# The real-control-plane tier needs the binaries: build them first (cold ~25 min, warm ~1 s);
# the tests that use them fail, never skip, when they are missing.
test: setup system-deps lint typecheck control-plane
	bash scripts/pytest.sh

unit: setup
	$(PY) -m pytest tests/unit -q

clean:
	rm -rf $(VENV) .cache .mypy_cache .ruff_cache .pytest_cache

# The real control plane (kube-apiserver, kube-controller-manager, kubectl, etcd, KServe's manager,
# Knative Serving's controller, webhook, autoscaler, activator and queue-proxy),
# built from Go modules into ${KSW_CACHE:-~/.cache/kserve-warden}/control-plane; prints its bin dir.
.PHONY: control-plane
control-plane:
	@bash scripts/control-plane.sh
