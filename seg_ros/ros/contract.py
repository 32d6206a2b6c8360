"""The node's outside contract in one place: its topic names, the name of its diagnostics
status and the log line that says it could not start. The node, the tools that drive it
(seg-demo, seg-bag-eval's live replay, the benchmarks) and the tests take them from here, so
a rename breaks one place, loudly. No rclpy or torch imports: tools read it cheaply."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

NODE_NAME = "segmentation_node"
INPUT_TOPIC = "image"
COMPRESSED_INPUT_TOPIC = "image/compressed"
DIAGNOSTICS_TOPIC = "/diagnostics"


# output name -> its topic, encoding and the parameter that enables it
class Output(NamedTuple):
    topic: str  # relative to the node's (or camera's) namespace
    encoding: str
    flag: str  # the parameter that turns it on


OUTPUTS = {
    "labels": Output("segmentation/labels", "mono8", "publish_labels"),
    "color": Output("segmentation/color", "rgb8", "publish_color"),
    "overlay": Output("segmentation/overlay", "rgb8", "publish_overlay"),
    # the winning class's softmax probability x 255; off by default (it costs a softmax)
    "confidence": Output("segmentation/confidence", "mono8", "publish_confidence"),
}
OUTPUT_NAMES = tuple(OUTPUTS)
OUTPUTS_ON_BY_DEFAULT = ("labels", "color", "overlay")
# image_transport's compressed variant of each raw output ("<topic>/compressed"): PNG for the
# labels (class ids must survive), JPEG for colour and overlay.
COMPRESSED_FORMATS = {"labels": "png", "color": "jpeg", "overlay": "jpeg"}
LABEL_INFO_TOPIC = "segmentation/label_info"  # vision_msgs/LabelInfo, where it is installed
# The labels' camera_info: the camera's own (read beside the image topic) scaled to the labels.
CAMERA_INFO_TOPIC = "segmentation/camera_info"
CAMERA_INFO_KEY = "Camera info"  # its topic and how many came; unmatched ones are counted
# Logged (ERROR) when the first pipeline cannot be built; the node then waits for parameters.
START_FAILURE = "cannot build the pipeline"


def output_topic(name: str) -> str:
    return OUTPUTS[name].topic


def status_name(node_fqn: str, camera: str = "") -> str:
    """diagnostic_updater's "<node>: <task>" with the namespace, so that two cameras' nodes
    (front/segmentation_node, rear/segmentation_node) stay apart: ``node_fqn`` is the node's
    fully qualified name (``/front/segmentation_node``). A node serving several cameras
    (its ``cameras`` parameter) has one status per camera: ``"<node>: segmentation front"``."""
    task = f"segmentation {camera}" if camera else "segmentation"
    return f"{node_fqn.lstrip('/')}: {task}"


def camera_topic(camera: str, relative: str) -> str:
    """A topic of one camera of a multi-camera node: ``front`` + ``image`` -> ``front/image``
    (relative, so the node's namespace applies); no camera: the topic itself."""
    camera = camera.rstrip("/")
    return f"{camera}/{relative}" if camera else relative


def node_fqn(namespace: str, name: str = NODE_NAME) -> str:
    ns = namespace.strip("/")
    return f"/{ns}/{name}" if ns else f"/{name}"


# ---------------------------------------------------------------- the diagnostics status
# The keys of the node's status (besides diagnostic_updater's FrequencyStatus keys, which
# ros/diagnostics.py writes): the node writes them from here, NodeStatus reads them from here.
FRAMES_RECEIVED = "Frames received"
FRAMES_PROCESSED = "Frames processed"
FRAMES_DROPPED = "Frames dropped"
FRAMES_IDLE = "Frames skipped (no subscribers)"
BAD_INPUTS = "Bad inputs"
LAST_BAD_INPUT = "Last bad input"
INFERENCE_ERRORS = "Inference errors"
SUBSCRIBERS = "Subscribers"
OUTPUT_FREQUENCY = "Actual frequency (Hz)"
INPUT_FREQUENCY = "Input frequency (Hz)"
LIFECYCLE_STATE = "Lifecycle state"
INPUT_TOPIC_KEY = "Input topic"
INPUT_QOS_KEY = "Input QoS"
BUILDING = "Building"
LAST_ERROR = "Last error"
FRAMES_BATCHED = "Frames run in batches"  # of processed: with other cameras' frames
BATCHING = "Batching"  # how the node batches cameras' frames on this backend
FRAMES_COMPRESSED = "Outputs compressed"  # PNG/JPEG encodings: none while unsubscribed
FRAMES_IN_FLIGHT = "Frames in flight"  # now: in the network or waiting to be published
INFERENCE_MODE = "Inference mode"  # describe_key("inference_mode"): mode and frames in flight
COUNTERS = (
    FRAMES_RECEIVED,
    FRAMES_PROCESSED,
    FRAMES_DROPPED,
    FRAMES_IDLE,
    BAD_INPUTS,
    INFERENCE_ERRORS,
    FRAMES_BATCHED,
    FRAMES_COMPRESSED,
    OUTPUT_FREQUENCY,
)
# The pipeline the node serves: Pipeline.describe()'s names, each under describe_key(name).
MODEL_FIELDS = (
    "model", "variant", "backend", "device", "precision", "input_size", "weights",
    "random_init", "dataset", "num_classes",
)  # fmt: skip
NO_MODEL = "none"  # the "Model" value while no pipeline is loaded
# The node's latency stages (its own work around the pipeline's three stages, then the
# end-to-end spans) as (LatencyWindow stage, label in the status), and the statistics.
LATENCY_STAGES = (
    ("decode", "decode"),
    ("preprocess", "preprocess"),
    ("inference", "inference"),
    ("postprocess", "postprocess"),
    ("publish", "publish"),
    ("compress", "compress"),  # PNG/JPEG of the compressed outputs, only while subscribed
    ("receipt_to_publish", "receipt to publish"),
    ("stamp_to_publish", "stamp to publish"),
)
LATENCY_LABELS = tuple(label for _, label in LATENCY_STAGES)
LATENCY_STATISTICS = ("p50", "p90", "p99", "max")
NOT_AVAILABLE = "n/a"  # a latency with no sample yet


def latency_key(label: str, statistic: str) -> str:
    """The status key of one latency figure: ``statistic`` is p50, p90, p99 or max."""
    return f"Latency {label} {statistic} (ms)"


def describe_key(name: str) -> str:
    """The status key of one Pipeline.describe() entry: ``input_size`` -> ``Input size``."""
    return name.replace("_", " ").capitalize()


@dataclass
class NodeStatus:
    """The node's status read back, typed: what seg-demo, seg-bag-eval's live mode and the
    node benchmark report. Missing keys read as absent (None/empty), never as a crash."""

    values: dict[str, str] = field(default_factory=dict)

    def text(self, key: str, default: str = "?") -> str:
        return self.values.get(key, default)

    def number(self, key: str) -> float | None:
        try:
            return float(self.values[key])
        except (KeyError, ValueError):
            return None

    @property
    def counters(self) -> dict[str, str]:
        return {k: self.values[k] for k in COUNTERS if k in self.values}

    @property
    def model(self) -> dict[str, str]:
        """Pipeline.describe() of the served pipeline; {} while there is none."""
        if self.values.get(describe_key("model"), NO_MODEL) == NO_MODEL:
            return {}
        return {
            n: self.values[describe_key(n)] for n in MODEL_FIELDS if describe_key(n) in self.values
        }

    @property
    def random_weights(self) -> bool:
        return self.values.get(describe_key("random_init")) == "true"

    def latency(self, label: str) -> dict[str, float] | None:
        """{p50, p90, p99, max} in ms of one stage, or None before its first sample."""
        out = {}
        for statistic in LATENCY_STATISTICS:
            value = self.number(latency_key(label, statistic))
            if value is None:
                return None
            out[statistic] = value
        return out

    def latencies(self) -> dict[str, dict[str, float]]:
        """Every stage with samples, by its LatencyWindow name (``stamp_to_publish``)."""
        found = {stage: self.latency(label) for stage, label in LATENCY_STAGES}
        return {stage: figures for stage, figures in found.items() if figures is not None}
