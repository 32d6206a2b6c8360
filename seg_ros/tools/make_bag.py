"""seg-make-bag: write a dataset split (images + labels) as a rosbag2 for seg-bag-eval.

seg-make-bag camvid_val --dataset camvid --data-root ../shared/data/camvid --split val
seg-make-bag city_val --dataset cityscapes --data-root data/cityscapes --storage sqlite3
seg-make-bag cam_jpeg --dataset camvid --data-root ../shared/data/camvid --image-format jpeg

Frames go to an image topic (sensor_msgs/Image rgb8, or CompressedImage with --image-format
jpeg/png on <topic>/compressed) and labels to a label topic (mono8 class ids, 255 = ignore) with
the same header stamps, one frame every 1/rate seconds.
"""

from __future__ import annotations

import argparse
import sys
import time

from seg_ros.tools.options import HelpFormatter
from seg_ros.tools.output_paths import outputs_refused


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from seg_ros.bag.dataset_bag import IMAGE_FORMATS, BagLayout
    from seg_ros.bag.io import DEFAULT_DISTRO, DISTROS, STORAGES

    layout = BagLayout()
    p = argparse.ArgumentParser(
        prog="seg-make-bag",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=HelpFormatter,
    )
    p.add_argument("output", help="the bag to write (a folder; must not exist)")
    p.add_argument("--dataset", required=True, help="camvid, cityscapes, mapillary or folder")
    p.add_argument("--data-root", required=True, help="dataset folder")
    p.add_argument("--split", default="val", help="dataset split (val)")
    p.add_argument("--classes", help="classes YAML of a folder dataset (default: in its root)")
    p.add_argument("--max-size", type=int, help="shrink frames whose long side is larger")
    p.add_argument("--storage", default="mcap", choices=sorted(STORAGES), help="(mcap)")
    p.add_argument(
        "--ros-distro",
        default=DEFAULT_DISTRO,
        choices=sorted(DISTROS),
        help=f"message definitions stored in the bag ({DEFAULT_DISTRO})",
    )
    p.add_argument(
        "--rate", type=float, default=layout.rate, help=f"frames per second ({layout.rate:g})"
    )
    p.add_argument(
        "--frame-id", default=layout.frame_id, help=f"header frame_id ({layout.frame_id})"
    )
    p.add_argument("--image-topic", default=layout.image_topic, help=f"({layout.image_topic})")
    p.add_argument("--label-topic", default=layout.label_topic, help=f"({layout.label_topic})")
    p.add_argument("--no-labels", action="store_true", help="write the images only")
    p.add_argument(
        "--image-format",
        default="raw",
        choices=IMAGE_FORMATS,
        help="raw: Image rgb8; jpeg/png: CompressedImage on <image topic>/compressed",
    )
    p.add_argument(
        "--start-time",
        type=float,
        help="first stamp in seconds since the epoch (default: now); fix it for reproducible bags",
    )
    p.add_argument("--limit", type=int, help="only the first N frames, N >= 1 (default: all)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if outputs_refused("seg-make-bag", {}, new={"output": args.output}):
        return 2
    from seg_ros.bag.dataset_bag import BagLayout, write_split_bag
    from seg_ros.bag.io import BagError
    from seg_ros.training.datasets import DatasetError, build_dataset

    if args.limit is not None and args.limit < 1:
        print("seg-make-bag: --limit must be at least 1", file=sys.stderr)
        return 2
    options: dict[str, object] = {}
    if args.classes:
        options["classes"] = args.classes
    if args.max_size:
        options["max_size"] = args.max_size
    layout = BagLayout(
        image_topic=args.image_topic,
        label_topic=None if args.no_labels else args.label_topic,
        frame_id=args.frame_id,
        rate=args.rate,
        image_format=args.image_format,
        start_ns=None if args.start_time is None else round(args.start_time * 1e9),
    )
    try:
        layout.check()
        dataset = build_dataset(args.dataset, args.data_root, args.split, **options)
        count = len(dataset) if args.limit is None else min(args.limit, len(dataset))
        frames = (dataset[i] for i in range(count))
        started = time.perf_counter()

        def progress(done: int) -> None:
            if done % 25 == 0 or done == count:
                print(f"\r{done}/{count} frames", end="", file=sys.stderr, flush=True)

        written = write_split_bag(
            args.output,
            frames,
            dataset.label_set,
            layout,
            storage=args.storage,
            distro=args.ros_distro,
            source=f"{dataset.name} ({args.data_root})",
            progress=progress,
        )
    except (BagError, DatasetError) as e:
        print(f"seg-make-bag: {e}", file=sys.stderr)
        return 2
    print(file=sys.stderr)
    print(
        f"wrote {written['frames']} frames of {dataset.name} to {args.output} ({args.storage}, "
        f"{args.ros_distro}) in {time.perf_counter() - started:.1f} s: images on "
        f"{written['image_topic']}"
        + (f", labels on {written['label_topic']}" if written["label_topic"] else "")
        + f", {args.rate:g} fps, frame_id {args.frame_id!r}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
