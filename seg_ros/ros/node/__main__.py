"""``python -m seg_ros.ros.node``: the node in a process of its own (ros/node_process.py)."""

import sys

from seg_ros.ros.node.cli import main

sys.exit(main())
