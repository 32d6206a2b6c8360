"""The node's outside contract, pinned: topic and key names as users' dashboards and scripts
spell them, and the typed read-back (NodeStatus) of a status the node's own code writes. A
rename fails here, in one place, instead of silently in a tool that reads the status."""

from __future__ import annotations

from seg_ros.ros import contract
from seg_ros.ros.contract import LATENCY_STAGES, NodeStatus, describe_key, latency_key
from seg_ros.ros.diagnostics import frequency_values, latency_values
from seg_ros.ros.stats import LatencyWindow


def test_names_users_spell() -> None:
    assert contract.INPUT_TOPIC == "image" and contract.COMPRESSED_INPUT_TOPIC == "image/compressed"
    assert [contract.output_topic(n) for n in contract.OUTPUT_NAMES] == [
        "segmentation/labels",
        "segmentation/color",
        "segmentation/overlay",
        "segmentation/confidence",
    ]
    assert contract.OUTPUTS_ON_BY_DEFAULT == ("labels", "color", "overlay")
    assert (
        contract.status_name("/front/segmentation_node") == "front/segmentation_node: segmentation"
    )
    assert contract.node_fqn("front") == "/front/segmentation_node" == contract.node_fqn("/front/")
    assert latency_key("stamp to publish", "p99") == "Latency stamp to publish p99 (ms)"
    assert describe_key("input_size") == "Input size"
    assert contract.COUNTERS[:3] == ("Frames received", "Frames processed", "Frames dropped")
    # diagnostic_updater's FrequencyStatus key, which aggregators know
    assert contract.OUTPUT_FREQUENCY == "Actual frequency (Hz)"


def node_values(window: LatencyWindow, model: dict[str, str] | None) -> dict[str, str]:
    """A status as the node builds it (its own helpers and key names)."""
    values = frequency_values(9.5, 19, 2.0, 40, 10.0) + latency_values(window)
    values += [(contract.FRAMES_RECEIVED, "41"), (contract.FRAMES_DROPPED, "1")]
    if model is None:
        values.append((describe_key("model"), contract.NO_MODEL))
    else:
        values += [(describe_key(k), v) for k, v in model.items()]
    return dict(values)


def test_node_status_reads_what_the_node_writes() -> None:
    window = LatencyWindow()
    for ms in (10.0, 20.0, 30.0):
        window.add("inference", ms)
    model = {
        "model": "fplnet",
        "input_size": "360x480",
        "random_init": "false",
        "backend": "openvino (auto)",
    }
    status = NodeStatus(node_values(window, model))
    assert status.model == model and not status.random_weights
    inference = status.latency("inference")
    assert inference is not None and inference["p50"] == 20.0 and inference["max"] == 30.0
    assert status.latency("decode") is None  # "n/a": no sample yet
    assert set(status.latencies()) == {"inference"}
    assert (
        status.counters["Frames received"] == "41"
        and status.number(contract.OUTPUT_FREQUENCY) == 9.5
    )
    assert {stage for stage, _ in LATENCY_STAGES} >= set(status.latencies())


def test_node_status_without_a_model_or_keys() -> None:
    assert NodeStatus(node_values(LatencyWindow(), None)).model == {}
    empty = NodeStatus({})
    assert empty.model == {} and empty.latencies() == {} and empty.number("Frames received") is None
    assert empty.text(contract.FRAMES_DROPPED) == "?"
