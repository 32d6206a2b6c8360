"""Models nobody here wrote: torchvision's segmentation networks (random init), exported to ONNX
in the test as a user would, with the description seg_ros reads beside them."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

OWN_SIZE = (120, 160)  # network (height, width): small, so a model builds and runs in a second
IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


def network(
    arch: str, classes: int, head: str = "logits", bgr: bool = False, stride: int = 1
) -> Any:
    """torchvision ``arch`` (random init, seeded) as a module with one output: its logits,
    their softmax (``probabilities``) or argmax (``labels``); ``bgr``: it takes BGR input;
    ``stride``: it answers at 1/stride of its input (as SegFormer's head does)."""
    import torch
    import torchvision

    torch.manual_seed(classes)
    build = getattr(torchvision.models.segmentation, arch)
    model = build(weights=None, weights_backbone=None, num_classes=classes).eval()
    for layer in model.modules():
        # Random init answers one class everywhere, set by the classifier's bias; without it
        # the labels vary over the frame, so an agreement test can tell paths apart.
        if isinstance(layer, torch.nn.Conv2d) and layer.out_channels == classes:
            torch.nn.init.zeros_(layer.bias)

    class OneOutput(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if bgr:  # trained on BGR: channel 0 is blue
                x = x.flip(1)
            out = self.model(x)["out"]
            if stride > 1:
                out = torch.nn.functional.avg_pool2d(out, stride)
            if head == "probabilities":
                return out.softmax(1)
            if head == "labels":
                return out.argmax(1)
            return out

    return OneOutput().eval()


def export(module: Any, path: Path, dynamic: bool, outputs: int = 1) -> Path:
    """``module`` to ONNX as a user exports it: torch.onnx, fixed or dynamic height/width."""
    import torch

    h, w = OWN_SIZE
    names = ["out", "aux", "extra"][:outputs]
    axes = {"image": {2: "h", 3: "w"}, **{n: {2: "h", 3: "w"} for n in names}} if dynamic else None
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notes
        torch.onnx.export(
            module,
            (torch.zeros(1, 3, h, w),),
            str(path),
            input_names=["image"],
            output_names=names,
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )
    return path


def describe(path: Path, classes: list[str], **keys: Any) -> Path:
    """Write ``<path>.yaml``: the classes, ImageNet's normalisation and ``keys``."""
    import yaml

    data = {"classes": classes, **IMAGENET, "output": "logits", **keys}
    target = path.with_name(path.name + ".yaml")
    target.write_text(yaml.safe_dump(data, sort_keys=False))
    return target


def torch_labels(module: Any, rgb: np.ndarray, bgr: bool = False) -> np.ndarray:
    """The module's own argmax for an RGB frame at network size (fed as its channels want)."""
    import torch

    from seg_ros.inference.preprocess import resize_to_network

    small = resize_to_network(rgb, OWN_SIZE)
    x = torch.from_numpy(np.ascontiguousarray(small)).permute(2, 0, 1)[None].float() / 255.0
    mean = torch.tensor(IMAGENET["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET["std"]).view(1, 3, 1, 1)
    x = (x - mean) / std
    if bgr:
        x = x.flip(1)
    with torch.no_grad():
        out = module(x)
    return (out if out.dim() == 3 else out.argmax(1))[0].numpy().astype(np.uint8)


def real_frames(count: int = 3) -> list[np.ndarray]:
    """RGB road frames from the demo clip in the repository."""
    import cv2

    folder = Path(__file__).resolve().parents[1] / "demo" / "camvid_clip" / "images"
    paths = sorted(folder.glob("*.jpg"))[:: max(1, 30 // count)][:count]
    return [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths]
