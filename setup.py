"""seg_ros: builds with colcon (ament_python) and installs with pip into a plain venv."""

from __future__ import annotations

from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "seg_ros"
NODES = ["segmentation_node"]


def tree(folder: str, pattern: str = "*") -> list[tuple[str, list[str]]]:
    """data_files entries that install ``folder`` under share/seg_ros, keeping subfolders."""
    entries: dict[str, list[str]] = {}
    for path in sorted(Path(folder).rglob(pattern)):
        if path.is_file() and "__pycache__" not in path.parts:
            entries.setdefault(f"share/{PACKAGE}/{path.parent}", []).append(str(path))
    return sorted(entries.items())


ROS_WHEELS = [
    # ROS 2 Kilted from PyPI (CPython 3.11). Optional so a system ROS install is never shadowed.
    "ros-rclpy",
    "ros-std-msgs",
    "ros-sensor-msgs",
    "ros-diagnostic-msgs",
    "ros-rcl-interfaces",
    "ros-lifecycle-msgs",
    "ros-rmw-fastrtps-cpp",
    "ros-rmw-implementation",
    "ros-ament-index-python",
]
ONNX = ["onnx>=1.17", "onnxscript>=0.3", "onnxruntime>=1.20"]
OPENVINO = ["openvino>=2024.0", "nncf>=2.10"]
TRAIN = ["tensorboard>=2.15", "tqdm>=4.60"]
BAG = ["rosbags>=0.10", "matplotlib>=3.8"]
TEST = ["pytest>=8", "pytest-timeout>=2.3", "ruff==0.17.6", "mcap>=1.1", "vermin>=1.6"]
# The colcon workspace build test (test_colcon_build.py): what a ROS install provides.
TEST += ["colcon-common-extensions>=0.3", "ros-ament-package"]

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        # launch_ros looks for executables in lib/<package>; colcon puts console scripts there
        # (setup.cfg), a pip install needs these shims.
        (f"lib/{PACKAGE}", [f"scripts/{n}" for n in NODES]),
        *tree("launch"),
        *tree("config"),
        *tree("models"),
        *tree("demo"),
    ],
    python_requires=">=3.8",
    install_requires=[
        "numpy>=1.24",
        "opencv-python-headless>=4.8",
        "pillow>=9",  # Mapillary label PNGs are palette images, which cv2 turns into colours
        "pyyaml>=6",
        "safetensors>=0.4",
        # The oldest releases supported (NVIDIA's JetPack 5 wheels); never pinned here, so pip
        # keeps a platform's own build (Jetson, CPU-only). The Makefile installs the tested pin.
        "torch>=2.0",
        "torchvision>=0.15",
    ],
    extras_require={
        "ros": ROS_WHEELS,
        "onnx": ONNX,
        "openvino": OPENVINO,
        "train": TRAIN,
        "bag": BAG,
        "test": TEST,
        "all": ROS_WHEELS + ONNX + OPENVINO + TRAIN + BAG + TEST,
    },
    zip_safe=True,
    maintainer="seg_ros developers",
    maintainer_email="dev@seg-ros.local",
    description="Real-time semantic segmentation for ROS 2 (FPLNet, RGPNet, DESANet).",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "segmentation_node = seg_ros.ros.node.cli:main",
            "seg-demo = seg_ros.tools.demo:main",
            "seg-train = seg_ros.tools.train:main",
            "seg-eval = seg_ros.tools.evaluate:main",
            "seg-export = seg_ros.tools.export:main",
            "seg-bench = seg_ros.tools.bench:main",
            "seg-bag-eval = seg_ros.tools.bag_eval:main",
            "seg-make-bag = seg_ros.tools.make_bag:main",
            "seg-models = seg_ros.tools.models:main",
            "seg-node-bench = seg_ros.tools.node_bench:main",
            "seg-cameras-bench = seg_ros.tools.cameras_bench:main",
            "seg-dds-bench = seg_ros.tools.dds_bench:main",
            "seg-quantize = seg_ros.tools.quantize:main",
            "seg-gpu-check = seg_ros.tools.gpu_check:main",
        ],
    },
)
