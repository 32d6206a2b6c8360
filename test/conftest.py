"""Fixtures shared by the test modules. Add yours; keep the others'."""

import pytest
from ros_fixtures import ros_domain, ros_probe  # noqa: F401 (fixtures, used by name)


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
