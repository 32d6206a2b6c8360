"""What the loaded model means, on the graph: the read-only parameters ``class_names`` and
``class_colors`` (flat RGB) that follow the model, and, where vision_msgs is installed,
``vision_msgs/LabelInfo`` on ``segmentation/label_info`` (transient local, once per model)."""

from __future__ import annotations

from typing import Any

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from seg_ros.labels import IGNORE_INDEX
from seg_ros.ros.contract import LABEL_INFO_TOPIC

CLASS_NAMES = "class_names"
CLASS_COLORS = "class_colors"
MODEL_PARAMS = (CLASS_NAMES, CLASS_COLORS)
READ_ONLY = "follows the loaded model; read-only"
# A late subscriber (RViz started after the node) still gets the model's LabelInfo.
LABEL_INFO_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)
DESCRIPTIONS = {
    CLASS_NAMES: "The loaded model's class names; label id i is class_names[i], "
    f"{IGNORE_INDEX} = unlabeled. Declared while a model is loaded.",
    CLASS_COLORS: "The loaded model's colours, flat RGB: class i is [3i, 3i+1, 3i+2].",
}


def model_values(metadata: Any) -> dict[str, list]:
    """The parameters' values for a model's WeightsMetadata."""
    return {
        CLASS_NAMES: list(metadata.class_names),
        CLASS_COLORS: [int(v) for rgb in metadata.palette for v in rgb],
    }


def label_info_types() -> tuple[Any, Any] | None:
    """(LabelInfo, VisionClass) where vision_msgs is installed, else None."""
    try:
        from vision_msgs.msg import LabelInfo, VisionClass
    except ImportError:
        return None
    return LabelInfo, VisionClass


def label_info(metadata: Any, label_info_type: Any, vision_class_type: Any) -> Any:
    """vision_msgs/LabelInfo for a model: one VisionClass per class id, and 255 unlabeled
    (the vision_msgs convention). The node stamps the header."""
    classes = [
        vision_class_type(class_id=i, class_name=n) for i, n in enumerate(metadata.class_names)
    ]
    classes.append(vision_class_type(class_id=IGNORE_INDEX, class_name="unlabeled"))
    return label_info_type(class_map=classes, threshold=0.0)


class ModelInfo:
    """Keeps the parameters and LabelInfo of a node in step with the model it serves."""

    def __init__(self, node: Any) -> None:
        self._node = node
        self._types = label_info_types()
        self._publisher: Any = None
        self.published = 0  # LabelInfo messages sent

    def show(self, metadata: Any, set_internally: Any) -> None:
        """The model now served: declare or update the parameters (``set_internally`` sets
        them past the node's refusal of outside changes), publish its LabelInfo."""
        values = model_values(metadata)
        for name, value in values.items():
            if not self._node.has_parameter(name):
                descriptor = ParameterDescriptor(
                    description=DESCRIPTIONS[name], additional_constraints=READ_ONLY
                )
                set_internally(
                    lambda n=name, v=value, d=descriptor: self._node.declare_parameter(n, v, d)
                )
        set_internally(
            lambda: self._node.set_parameters([Parameter(n, value=v) for n, v in values.items()])
        )
        if self._types is None:
            return
        if self._publisher is None:
            self._publisher = self._node.create_publisher(
                self._types[0], LABEL_INFO_TOPIC, LABEL_INFO_QOS
            )
        msg = label_info(metadata, *self._types)
        msg.header.stamp = self._node.get_clock().now().to_msg()
        self._publisher.publish(msg)
        self.published += 1

    def clear(self) -> None:
        """No model: the parameters go (undeclared), and the LabelInfo publisher with them."""
        for name in MODEL_PARAMS:
            if self._node.has_parameter(name):
                self._node.undeclare_parameter(name)
        if self._publisher is not None:
            self._node.destroy_publisher(self._publisher)
            self._publisher = None
