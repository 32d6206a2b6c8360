"""Weights files for the tests: freshly initialised networks saved as seg_ros weights with
CamVid's classes, at the small network sizes the tests run at.

No rclpy here, so the pipeline tests that use it run where the ROS wheels are missing.
"""

from __future__ import annotations

from pathlib import Path

# Network input sizes, height x width: small, so a CPU runs the tests quickly.
NETWORK_SIZE = (48, 64)  # the ROS node tests'
PIPELINE_SIZE = (64, 96)  # the pipeline tests': a pipeline builds and runs in under a second


def make_weights(
    path: Path,
    model: str = "fplnet",
    variant: str | None = None,
    *,
    input_size: tuple[int, int] = NETWORK_SIZE,
    random_bn_stats: bool = False,
    tensors_of: str | None = None,
    seed: int = 0,
) -> Path:
    """``model``/``variant`` (None: the model's first variant), seeded, saved to ``path``.

    ``random_bn_stats`` moves BatchNorm's running statistics off their initial 0 and 1, so
    that folding BatchNorm into the convolutions changes the weights and a wrong fold shows.

    ``tensors_of`` stores another variant's tensors under this metadata: the header reads
    fine (so the parameter check passes) but the tensors do not fit (so the build fails).
    """
    import torch

    from seg_ros.labels import CAMVID
    from seg_ros.models import build_model, resolve_variant
    from seg_ros.weights import WeightsMetadata, save_weights

    torch.manual_seed(seed)
    variant = resolve_variant(model, variant)
    net = build_model(model, tensors_of or variant, CAMVID.num_classes)
    if random_bn_stats:
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    meta = WeightsMetadata(
        model=model,
        variant=variant,
        num_classes=CAMVID.num_classes,
        dataset="camvid",
        class_names=list(CAMVID.classes),
        palette=[list(c) for c in CAMVID.palette],
        input_size=list(input_size),
        training={"note": "test weights"},
    )
    return save_weights(path, net.state_dict(), meta)


def truncated_copy(good: Path, path: Path) -> Path:
    """A weights file cut in half: unreadable even as a header."""
    data = good.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def pipeline_weights(path: Path, model: str = "fplnet", variant: str | None = None) -> Path:
    """Weights the pipeline tests run: PIPELINE_SIZE, BatchNorm statistics randomised so a
    wrong fold or fast path changes labels."""
    return make_weights(path, model, variant, input_size=PIPELINE_SIZE, random_bn_stats=True)
