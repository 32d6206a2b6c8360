"""seg_ros: real-time semantic segmentation for ROS 2.

Importing the package is cheap on purpose: torch, onnxruntime, tensorrt and rclpy are imported
only by the modules that use them, so the parts that need no GPU or ROS run anywhere.
"""

__version__ = "0.1.0"
