"""PyTorch backend: CPU or CUDA, fp32 / bf16 / fp16, channels_last, optional torch.compile.

What makes it fast on a CPU: BatchNorm folded into the convolutions (fusion.py), channels_last
memory (oneDNN's native layout, no reorder per conv), bf16 convolutions on AMX through
autocast, and DESANet's deformable conv as grid_sample + 1x1 conv (deform.py).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from seg_ros.inference.backends.base import Backend, BuildContext
from seg_ros.inference.config import COMPILE_MODES, cuda_index
from seg_ros.inference.errors import BackendUnavailableError, ConfigError
from seg_ros.inference.preprocess import normalisation_constants

log = logging.getLogger("seg_ros.inference")


def resolve_device(device: str) -> Any:
    """A torch.device that exists here, or BackendUnavailableError saying why not."""
    import torch

    if device == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise BackendUnavailableError(
            f"device {device!r} was asked, but CUDA is not available to this PyTorch "
            f"({torch.__version__}, built with CUDA {torch.version.cuda}); use device 'cpu'"
        )
    index = cuda_index(device)
    if index >= torch.cuda.device_count():
        raise BackendUnavailableError(
            f"device {device!r} was asked, but only {torch.cuda.device_count()} CUDA "
            "device(s) exist"
        )
    return torch.device("cuda", index)


def normalisation_tensors(mean: list[float], std: list[float], device: Any) -> tuple[Any, Any]:
    """preprocess.normalisation_constants as 1x3x1x1 tensors on ``device`` (torch, TensorRT)."""
    import torch

    scale, bias = normalisation_constants(mean, std)
    return (
        torch.tensor(scale, device=device).view(1, 3, 1, 1),
        torch.tensor(bias, device=device).view(1, 3, 1, 1),
    )


class TorchBackend(Backend):
    name = "torch"
    precisions = ("fp32", "bf16", "fp16")
    max_batch = 8

    @classmethod
    def build(cls, ctx: BuildContext) -> TorchBackend:
        c, meta = ctx.config, ctx.metadata
        return cls(
            ctx.network,
            meta.mean,
            meta.std,
            c.device,
            c.precision,
            compile_mode=c.compile,
            threads=c.threads,
        )

    def __init__(
        self,
        network: Any,
        mean: list[float],
        std: list[float],
        device: str = "cpu",
        precision: str = "fp32",
        compile_mode: str = "off",
        channels_last: bool = True,
        fold_bn: bool = True,
        threads: int | None = None,
        sampled_deform: bool = True,
        bf16_weights: bool = False,
    ) -> None:
        import torch

        super().__init__()
        if compile_mode not in COMPILE_MODES:
            raise ConfigError(
                f"compile {compile_mode!r} is not allowed; choose from {COMPILE_MODES}"
            )
        if threads:
            torch.set_num_threads(threads)
        self.torch_device = resolve_device(device)
        self.device = str(self.torch_device)
        self.precision = precision
        cuda = self.torch_device.type == "cuda"
        # A GPU runs a batch in little more than one frame's time. A CPU answers more frames
        # but each later (docs/BENCHMARKS.md), so there it batches only when asked to.
        self.auto_batch = self.max_batch if cuda else 1
        if precision == "fp16" and not cuda:
            raise BackendUnavailableError("precision 'fp16' needs a CUDA device for torch")
        if precision == "bf16" and cuda and not torch.cuda.is_bf16_supported():
            raise BackendUnavailableError(f"this GPU ({self.device}) has no bf16 support")
        self.dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[
            precision
        ]
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

        model = self._prepared(network, fold_bn, sampled_deform, bf16_weights)
        for p in model.parameters():
            p.requires_grad_(False)
        self.model = model
        self.notes["channels_last"] = str(channels_last)
        self.compile_mode = compile_mode
        if compile_mode != "off":
            options = {"freezing": True} if compile_mode == "inductor-freezing" else None
            # The parity guard in the pipeline runs the compiled model before it is used.
            self.model = torch.compile(model, options=options)
            self.notes["compile"] = compile_mode

        self._scale, self._bias = normalisation_tensors(mean, std, self.torch_device)

    def _prepared(
        self, network: Any, fold_bn: bool, sampled_deform: bool, bf16_weights: bool
    ) -> Any:
        """A copy of ``network`` made for inference here: BatchNorm folded, the CPU's
        deformable conv, on the device in its memory format and precision."""
        import torch

        from seg_ros.inference.fusion import fold_batchnorm

        cuda = self.torch_device.type == "cuda"
        if fold_bn:
            model, folded = fold_batchnorm(network)
            self.notes["batchnorm_folded"] = str(folded)
        else:
            import copy

            model = copy.deepcopy(network)
        if not cuda and sampled_deform:
            from seg_ros.models.deform import replace_deform_convs

            replaced = replace_deform_convs(model)
            if replaced:
                self.notes["deform_conv"] = "grid_sample + 1x1 conv: " + ", ".join(replaced)
        model = model.eval().to(self.torch_device, memory_format=self.memory_format)
        # bf16 on a CPU: autocast (bf16 convolutions on AMX, fp32 weights and fp32 wherever an
        # op mixes with fp32) rather than converting the weights. Measured with trained weights
        # on CamVid: DESANet 99.60% label agreement with fp32 instead of 99.44% and 13% faster,
        # RGPNet 99.63% instead of 99.56% at the same speed; FPLNet ~10% slower, same agreement.
        self.autocast = self.dtype == torch.bfloat16 and not cuda and not bf16_weights
        if self.dtype != torch.float32 and not self.autocast:
            model = model.to(self.dtype)
            if not cuda:
                from seg_ros.models.deform import keep_deform_convs_fp32

                # torchvision's CPU deform_conv2d has no reduced-precision kernel.
                kept = keep_deform_convs_fp32(model, self.dtype)
                if kept:
                    self.notes["fp32_modules"] = ", ".join(kept)
        if self.dtype != torch.float32:
            self.notes["reduced_precision"] = "autocast" if self.autocast else "weights converted"
        return model

    def prepare(self, image: np.ndarray) -> Any:
        import torch

        # HWC uint8 -> 1x3xHxW view whose memory is already channels_last: no transpose copy.
        if not image.flags.writeable:  # e.g. a view of a ROS message buffer: torch warns
            image = image.copy()
        x = torch.from_numpy(image).to(self.torch_device, non_blocking=True)
        x = x.permute(2, 0, 1).unsqueeze(0)
        if self.memory_format != torch.channels_last:
            x = x.contiguous()
        x = torch.addcmul(self._bias, x.float(), self._scale)  # (u8 * scale) + bias, one pass
        x = x.contiguous(memory_format=self.memory_format)
        return x if self.dtype == torch.float32 or self.autocast else x.to(self.dtype)

    def infer(self, batch: Any) -> Any:
        import torch

        with torch.inference_mode(), torch.autocast(
            "cpu", dtype=torch.bfloat16, enabled=self.autocast
        ):
            logits = self.model(batch)
        if self.torch_device.type == "cuda":
            torch.cuda.synchronize(self.torch_device)
        return logits

    def infer_many(self, batches: list[Any]) -> list[Any]:
        import torch

        if len(batches) == 1:
            return [self.infer(batches[0])]
        logits = self.infer(torch.cat(batches))
        return [logits[i : i + 1] for i in range(len(batches))]

    def labels(self, logits: Any) -> np.ndarray:
        return argmax_labels(logits)

    def to_numpy(self, logits: Any) -> np.ndarray:
        return logits.float().cpu().numpy()

    def confidence(self, logits: Any) -> np.ndarray:
        import torch

        # On the logits' device: only the HxW plane is copied back from a GPU.
        with torch.inference_mode():
            return logits[0].float().softmax(0).amax(0).cpu().numpy()


def argmax_labels(logits: Any) -> np.ndarray:
    """1xCxHxW logits -> HxW uint8 class ids, computed where the logits are (on the GPU for
    CUDA, so only the uint8 map is copied back).

    The networks run channels_last, so their logits are too: the classes of a pixel are then
    adjacent in memory, which makes this argmax ~6x cheaper than over NCHW planes.
    """
    import torch

    with torch.inference_mode():
        x = logits[0]
        labels = x.argmax(0).to(torch.uint8)
        return labels.cpu().numpy()
