"""The package built the ROS way: ``colcon build`` in a fresh workspace (as on a robot with a
ROS install), then the install space checked file by file and used through its setup script.
Also: every dependency package.xml declares is a real ROS package or rosdep key."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from test_cli import SCRIPTS  # setup.py's console scripts, read once

ROOT = Path(__file__).resolve().parents[1]
COLCON = Path(sys.executable).with_name("colcon")

# Checked against ros/rosdistro (commit 8468e88, 2026-08-22): package names released in humble,
# jazzy and kilted/distribution.yaml, and keys of rosdep/python.yaml. A dependency added to
# package.xml must be checked there and added here.
ROS_PACKAGES = {
    "rclpy", "rcl_interfaces", "lifecycle_msgs", "std_msgs", "sensor_msgs", "diagnostic_msgs",
    "ament_index_python", "launch", "launch_ros", "rviz2", "launch_testing",
}  # fmt: skip
ROSDEP_KEYS = {"python3-numpy", "python3-opencv", "python3-yaml", "python3-pil", "python3-pytest"}
DEPEND_TAGS = ("depend", "exec_depend", "build_depend", "test_depend", "buildtool_depend")


def _clean_env() -> dict[str, str]:
    # A ROS-wheels bootstrap marker without its LD_LIBRARY_PATH breaks a child's rclpy; and the
    # checkout must not leak in through PYTHONPATH.
    drop = ("_ROS_WHEELS_BOOTSTRAP_COMPLETE", "PYTHONPATH", "AMENT_PREFIX_PATH")
    return {k: v for k, v in os.environ.items() if k not in drop}


def _copy_source(dst: Path) -> None:
    """The files git tracks (a clean clone's tree), else the tree without build outputs."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=False, timeout=60
    )
    if listed.returncode == 0 and listed.stdout:
        for name in listed.stdout.decode().split("\0"):
            if name and (ROOT / name).is_file():
                (dst / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / name, dst / name)
        return
    skip = shutil.ignore_patterns(".venv*", "build", "install", "log", "runs", "out", ".git")
    shutil.copytree(ROOT, dst, ignore=skip, dirs_exist_ok=True)


@pytest.fixture(scope="module")
def install_space(tmp_path_factory) -> Path:
    if not COLCON.is_file():
        pytest.skip("colcon is not installed (pip install colcon-common-extensions)")
    pytest.importorskip("ament_package", reason="ros-ament-package is not installed")
    ws = tmp_path_factory.mktemp("colcon_ws")
    _copy_source(ws / "src" / "seg_ros")
    done = subprocess.run(
        [str(COLCON), "build", "--packages-select", "seg_ros", "--base-paths", "src"],
        cwd=ws,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return ws / "install"


def test_install_space_has_every_file_ros_looks_for(install_space: Path) -> None:
    pkg = install_space / "seg_ros"
    for script in SCRIPTS:
        exe = pkg / "lib" / "seg_ros" / script
        assert exe.is_file() and os.access(exe, os.X_OK), f"{script} not in lib/seg_ros"
    share = pkg / "share" / "seg_ros"
    for name in [
        "package.xml",
        "launch/segmentation.launch.py",
        "config/segmentation.yaml",
        "config/segmentation.rviz",
        "config/fastdds_large_images.xml",
        "models/fplnet_camvid.safetensors",
        "models/fplnet_camvid_int8.xml",
        "models/fplnet_camvid_int8.bin",
        "models/README.md",
        "demo/camvid_clip/README.md",
    ]:
        assert (share / name).is_file(), f"share/seg_ros/{name} missing"
    for shipped in (ROOT / "models").glob("*.safetensors"):
        assert (share / "models" / shipped.name).read_bytes() == shipped.read_bytes()
    assert (pkg / "share" / "ament_index" / "resource_index" / "packages" / "seg_ros").is_file()
    assert list(pkg.glob("lib/python3*/site-packages/seg_ros/ros/node/segmentation_node.py"))


def test_sourced_install_space_finds_its_own_package(install_space: Path) -> None:
    """After ``source install/setup.bash`` the package, its share folder and a console script
    come from the install space, not from the checkout."""
    probe = (
        "import seg_ros, ament_index_python.packages as p; "
        "print(seg_ros.__file__); print(p.get_package_share_directory('seg_ros'))"
    )
    script = (
        f"source {install_space}/setup.bash && "
        f'{sys.executable} -c "{probe}" && '
        f"{install_space}/seg_ros/lib/seg_ros/seg-export --help"
    )
    done = subprocess.run(
        ["bash", "-c", script],
        cwd="/",
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith(str(install_space)), lines[0]
    assert lines[1] == str(install_space / "seg_ros" / "share" / "seg_ros"), lines[1]
    assert "usage: seg-export" in done.stdout


def test_package_xml_names_real_ros_packages_and_rosdep_keys() -> None:
    tree = ET.parse(ROOT / "package.xml")
    declared = {e.text.strip() for tag in DEPEND_TAGS for e in tree.getroot().iter(tag)}
    assert declared, "package.xml declares no dependencies"
    unknown = declared - ROS_PACKAGES - ROSDEP_KEYS
    assert not unknown, f"not a ROS package or rosdep key checked in rosdistro: {unknown}"
    # Ubuntu's python3-torch (1.8 on jammy) would replace a Jetson's or a CUDA torch build.
    assert not declared & {"python3-torch", "python3-torchvision"}
    assert tree.getroot().find("export/build_type").text == "ament_python"
