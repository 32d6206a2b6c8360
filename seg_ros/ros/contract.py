"""The node's outside contract in one place: its topic names, the name of its diagnostics
status and the log line that says it could not start. The node, the tools that drive it
(seg-demo, seg-bag-eval's live replay, the benchmarks) and the tests take them from here, so
a rename breaks one place, loudly. No rclpy or torch imports: tools read it cheaply."""

from __future__ import annotations

NODE_NAME = "segmentation_node"
INPUT_TOPIC = "image"
COMPRESSED_INPUT_TOPIC = "image/compressed"
DIAGNOSTICS_TOPIC = "/diagnostics"
# output name -> (topic relative to the node's namespace, encoding, parameter that enables it)
OUTPUTS = {
    "labels": ("segmentation/labels", "mono8", "publish_labels"),
    "color": ("segmentation/color", "rgb8", "publish_color"),
    "overlay": ("segmentation/overlay", "rgb8", "publish_overlay"),
}
OUTPUT_NAMES = tuple(OUTPUTS)
# Logged (ERROR) when the first pipeline cannot be built; the node then waits for parameters.
START_FAILURE = "cannot build the pipeline"


def output_topic(name: str) -> str:
    return OUTPUTS[name][0]


def status_name(node_fqn: str) -> str:
    """diagnostic_updater's "<node>: <task>" with the namespace, so that two cameras' nodes
    (front/segmentation_node, rear/segmentation_node) stay apart: ``node_fqn`` is the node's
    fully qualified name (``/front/segmentation_node``)."""
    return f"{node_fqn.lstrip('/')}: segmentation"


def node_fqn(namespace: str, name: str = NODE_NAME) -> str:
    ns = namespace.strip("/")
    return f"/{ns}/{name}" if ns else f"/{name}"
