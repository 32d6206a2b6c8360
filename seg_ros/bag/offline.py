"""Offline bag evaluation: every frame through a Pipeline in this process, as fast as it runs."""

from __future__ import annotations

import time
from typing import Any

from seg_ros.bag.io import decode_frame


def run_offline(
    pipeline: Any, source: Any, evaluation: Any, writer: Any, outputs: dict[str, str] | None
) -> dict[str, Any]:
    """Score each frame of ``source`` into ``evaluation``; write outputs to ``writer`` if given.

    Returns the run's figures (frames, latency definition, FPS, notes, seconds) for the summary.
    """
    start = time.perf_counter()
    frames = 0
    sizes: set[tuple[int, int]] = set()
    for index, message in source:
        t0 = time.perf_counter()
        decoded = decode_frame(message)
        decode_ms = (time.perf_counter() - t0) * 1e3
        sizes.add((decoded.height, decoded.width))
        order = "bgr" if decoded.color_order == "bgr" else "rgb"
        result = pipeline(
            decoded.array,
            color_order=order,
            want_color=writer is not None,
            want_overlay=writer is not None,
        )
        t = result.timings
        latency = {
            "decode": decode_ms,
            "preprocess": t["preprocess"],
            "inference": t["inference"],
            "postprocess": t["postprocess"],
            "end_to_end": decode_ms + t["total"],
        }
        image = decoded.rgb() if evaluation.wants_sample(index) else None
        evaluation.add_prediction(
            index,
            message.stamp_ns,
            result.labels,
            latency,
            source.time_s(message),
            image,
            result.confidence,
        )
        if writer is not None:
            stamp, frame_id, log = message.stamp_ns, message.frame_id, message.log_time_ns
            writer.write_image(outputs["labels"], log, result.labels, "mono8", stamp, frame_id)
            writer.write_image(outputs["color"], log, result.color, "rgb8", stamp, frame_id)
            writer.write_image(outputs["overlay"], log, result.overlay, "rgb8", stamp, frame_id)
        frames += 1
    seconds = time.perf_counter() - start
    totals = [r.latency_ms["end_to_end"] for r in evaluation.records]
    notes = []
    if sizes and sizes != {tuple(pipeline.input_size)}:
        h, w = pipeline.input_size
        notes.append(
            f"frames are resized to the network input {h}x{w} (h x w) and the labels resized back "
            "(nearest); seg-eval runs each frame at its own size unless given --input-size"
        )
    return {
        "frames": {"in": frames, "out": frames, "dropped": 0},
        "latency_definition": "bag message to labels: decode + preprocess + inference + "
        "postprocess, in this process",
        "fps": {
            "wall": round(frames / seconds, 3) if seconds > 0 else None,
            "pipeline": round(1000 * len(totals) / sum(totals), 3) if totals else None,
        },
        "notes": notes,
        "seconds": round(seconds, 3),
    }
