# Two entry points (see README): `make demo` and `make test`. Both build .venv on first use.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
# ament_index lookups (launch files, shipped weights) must find the venv as an install prefix.
export AMENT_PREFIX_PATH := $(abspath $(VENV))
# No DDS variables here: seg_ros' own processes tune their Fast DDS participant themselves
# (seg_ros/ros/dds_tuning.py) and stay compatible with default-configured peers.

.PHONY: setup install demo test test-unit lint format compat jazzy

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

# ROS 2 Jazzy (the LTS most robots run) beside the Kilted wheels the suite uses: a venv of
# Jazzy's PyPI wheels (rclpy 7.1.6), in which the node's DDS tests run again.
JAZZY_VENV ?= .venv-jazzy
JAZZY_PY := $(JAZZY_VENV)/bin/python
JAZZY_WHEELS := ros-jazzy-rclpy ros-jazzy-std-msgs ros-jazzy-sensor-msgs ros-jazzy-diagnostic-msgs \
	ros-jazzy-rcl-interfaces ros-jazzy-lifecycle-msgs ros-jazzy-rmw-fastrtps-cpp \
	ros-jazzy-rmw-implementation ros-jazzy-ament-index-python
JAZZY_TESTS := test/test_node.py test/test_node_lifecycle.py test/test_node_cameras.py \
	test/test_node_in_flight.py test/test_node_graph.py test/test_node_latest_frame.py \
	test/test_node_own_model.py

$(JAZZY_VENV)/.deps: setup.py
	$(PYTHON) -m venv $(JAZZY_VENV)
	$(JAZZY_PY) -m pip install --quiet --upgrade pip
	$(JAZZY_PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(JAZZY_PY) -m pip install --quiet $(JAZZY_WHEELS)
	# seg_ros without its Kilted extra ("ros"): the tests import the checkout's code.
	$(JAZZY_PY) -m pip install --quiet --no-build-isolation '.[onnx,openvino,bag,test]'
	touch $@

jazzy: $(JAZZY_VENV)/.deps

test: install lint compat jazzy
	$(PY) -m pytest test $(PYTEST_ARGS)
	$(JAZZY_PY) test/ros_distro.py jazzy
	$(JAZZY_PY) -m pytest $(JAZZY_TESTS) $(PYTEST_ARGS)

# The edit loop: unit tests only (in-process: no DDS, no subprocess; conftest.py checks it).
# `make test` stays the whole suite and CI's command.
test-unit: setup
	SEG_ROS_UNIT_TESTS=1 $(PY) -m pytest test -m "not integration" $(PYTEST_ARGS)
