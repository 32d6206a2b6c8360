"""The segmentation node, one module per job (docs/ARCHITECTURE.md):

- ``segmentation_node``: the rclpy shell (lifecycle and parameter callbacks, wiring);
- ``camera_io``: per camera, the input subscription and QoS policy, the output publishers;
- ``frame_loop``: the worker and finisher threads, a frame's path top to bottom;
- ``serving``: the served pipeline snapshot, run-time builds, swap and revert;
- ``status``: diagnostics from a snapshot;
- ``cli``: usage, --help, main.
"""
