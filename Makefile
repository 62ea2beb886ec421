# Two commands for a machine without ROS: `make demo` and `make test`.
# Each creates .venv if missing and installs the pinned dependencies once; later runs reuse it.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.farsee-installed
PYTEST_ARGS ?=

.PHONY: all venv test demo lint clean

all: test

venv: $(STAMP)

$(STAMP): requirements.txt constraints.txt setup.py package.xml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "Installing pinned dependencies into $(VENV) (first run: several GB for PyTorch)..."
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt -c constraints.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $@

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

demo: $(STAMP)
	$(VENV)/bin/farsee-ros demo

lint: $(STAMP)
	$(VENV)/bin/ament_flake8 farsee_ros test setup.py
	$(VENV)/bin/ament_pep257 farsee_ros test setup.py

clean:
	rm -rf $(VENV) build install log demo_output *.egg-info
