"""rosbag2 evaluation without ROS: reading and writing bags (``rosbags``), pairing frames with
their ground truth by header stamp, scoring, and the report.

Nothing here imports rclpy; the live replay over DDS is ``seg_ros.ros.bag_replay``.
"""
