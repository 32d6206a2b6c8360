"""The ROS 2 adapter: the segmentation node, its parameters, message conversion, diagnostics.

The only package that imports rclpy and the message packages; everything it serves comes from
``seg_ros.inference``.
"""
