"""Fixtures shared by the test modules. Add yours; keep the others'.

Tests are of two kinds. Unit tests run in this process: no DDS, no subprocess (`make
test-unit`, the edit loop, runs only these, and fails one that starts a process). Integration
tests (marked ``integration`` here: they use the ROS fixtures, or their module runs whole tools,
builds or other interpreters) talk DDS between processes. `make test` runs both.
"""

import os
import subprocess

import pytest
from ros_fixtures import ros_domain, ros_probe  # noqa: F401 (fixtures, used by name)

# Fixtures that mean DDS (rclpy in this process, nodes in others); ros_domain is autouse and
# only sets the environment.
INTEGRATION_FIXTURES = {"ros_probe"}
# Modules whose tests start processes or run whole tools on real data, with or without DDS.
INTEGRATION_MODULES = {
    "test_bag_replay",
    "test_bench",  # seg-bench names the machine with lscpu
    "test_node",
    "test_node_cameras",
    "test_node_graph",
    "test_node_latest_frame",
    "test_node_lifecycle",
    "test_colcon_build",
    "test_ddp",
    "test_demo",
    "test_launch",
    "test_python_versions",
    "test_shipped_accuracy",
}
UNIT_ONLY = "SEG_ROS_UNIT_TESTS"  # set by make test-unit


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "integration: DDS between processes, subprocesses or whole-tool runs"
    )


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.module.__name__ if item.module else ""
        if INTEGRATION_FIXTURES & set(item.fixturenames) or module in INTEGRATION_MODULES:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(autouse=True)
def _unit_tests_start_no_process(request, monkeypatch):
    """Under make test-unit, a test that is not marked integration may not start a process:
    the split is checked, not trusted."""
    if os.environ.get(UNIT_ONLY) and request.node.get_closest_marker("integration") is None:

        def refuse(self, *args, **kwargs):
            raise AssertionError(
                f"{request.node.nodeid} starts a process: it is an integration test (conftest)"
            )

        monkeypatch.setattr(subprocess.Popen, "__init__", refuse)


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """Torch in the test process runs on one thread. The tests' inputs are tiny and gain
    nothing from intra-op threads, and on a 2-core machine the OpenMP workers contend with the
    node subprocesses the ROS tests start (a HarDNet training step went from 1 s to 20 s)."""
    import torch  # here, not at the top: collecting the tests needs no torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session", autouse=True)
def _session_artifact_cache(tmp_path_factory):
    """On-the-fly ONNX files and engines go to a private folder, never the user's
    ~/.cache/seg_ros. Session scope, so node processes that module fixtures start (before any
    per-test fixture runs) inherit it too."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SEG_ROS_CACHE", str(tmp_path_factory.mktemp("seg_ros_cache")))
        yield


@pytest.fixture(autouse=True)
def _artifact_cache(tmp_path, monkeypatch):
    """Each test starts with an empty cache at tmp_path/cache: a test that expects an export to
    happen is not fooled by one an earlier test left behind."""
    monkeypatch.setenv("SEG_ROS_CACHE", str(tmp_path / "cache"))
