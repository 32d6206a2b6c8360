# Two entry points (see README): `make demo` and `make test`. Both build .venv on first use.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
# ament_index lookups (launch files, shipped weights) must find the venv as an install prefix.
export AMENT_PREFIX_PATH := $(abspath $(VENV))
# No DDS variables here: seg_ros' own processes tune their Fast DDS participant themselves
# (seg_ros/ros/dds_tuning.py) and stay compatible with default-configured peers.

.PHONY: setup install demo test test-unit lint format compat

$(VENV)/.deps: setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# Pinned torch first: the build machines and CI have exactly this release on disk. It is a
	# CUDA build (~5 GB in the venv); a CPU-only robot takes PyTorch's CPU wheels (README).
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet --no-build-isolation '.[all]'
	touch $@

setup: $(VENV)/.deps

# A normal (not editable) install: pip -e would not install launch/, config/ and models/.
# Redone only when a file that goes into the install changed (it takes ~10 s).
PACKAGED := $(shell find seg_ros launch config models resource scripts -type f -not -path '*/__pycache__/*') \
	setup.py setup.cfg package.xml
$(VENV)/.installed: $(VENV)/.deps $(PACKAGED)
	$(PY) -m pip install --quiet --no-deps --no-build-isolation --force-reinstall .
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/seg-demo $(DEMO_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# The other Pythons seg_ros supports (3.8 JetPack 5, 3.10 Humble, 3.12 Jazzy), each in a small
# venv with the torch-free dependencies, for test/test_python_versions.py; absent ones skip.
compat: setup
	$(PY) test/python_versions.py build

test: install lint compat
	$(PY) -m pytest test $(PYTEST_ARGS)

# The edit loop: unit tests only (in-process: no DDS, no subprocess; conftest.py checks it).
# `make test` stays the whole suite and CI's command.
test-unit: setup
	SEG_ROS_UNIT_TESTS=1 $(PY) -m pytest test -m "not integration" $(PYTEST_ARGS)
