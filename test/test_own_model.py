"""Your own model: torchvision networks nobody here wrote, exported to ONNX in the test with a
description beside them, through the pipeline, the description's checks and the tools."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from own_models import OWN_SIZE, describe, export, network, real_frames, torch_labels

pytest.importorskip("onnx", reason="own models are ONNX files (pip install seg_ros[onnx])")
pytest.importorskip("onnxruntime", reason="onnxruntime runs own models (seg_ros[onnx])")

FIVE = ["background", "road", "car", "person", "sky"]
VOC = [f"voc_{i}" for i in range(21)]


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The models, exported once: name -> (onnx path, torch module)."""
    d = tmp_path_factory.mktemp("own")
    made = {}
    specs = {
        # dynamic height and width: the description names the size
        "lraspp5": ("lraspp_mobilenet_v3_large", 5, "logits", False, True),
        # fixed 1x3x120x160 input: no input_size in the description
        "deeplab21": ("deeplabv3_mobilenet_v3_large", 21, "logits", False, False),
        "probabilities": ("lraspp_mobilenet_v3_large", 5, "probabilities", False, True),
        "labels": ("lraspp_mobilenet_v3_large", 5, "labels", False, True),
        "bgr": ("lraspp_mobilenet_v3_large", 5, "logits", True, True),
        # answers at a quarter of its input's height and width
        "stride4": ("lraspp_mobilenet_v3_large", 5, "logits", False, True),
    }
    for name, (arch, classes, head, bgr, dynamic) in specs.items():
        module = network(arch, classes, head, bgr, stride=4 if name == "stride4" else 1)
        path = export(module, d / f"{name}.onnx", dynamic)
        keys = {"output": head, "name": name}
        if dynamic:
            keys["input_size"] = list(OWN_SIZE)
        if bgr:
            keys["color_order"] = "bgr"
        describe(path, FIVE if classes == 5 else VOC, **keys)
        made[name] = (path, module)
    return made


def _pipeline(path: Path, backend: str, **options):
    from seg_ros.inference import Pipeline

    options = {"output_resolution": "network", **options}
    return Pipeline(weights=str(path), backend=backend, **options)


BACKENDS = [
    "onnxruntime",
    pytest.param("openvino", marks=pytest.mark.skipif(
        not __import__("importlib").util.find_spec("openvino"), reason="openvino not installed"
    )),
]  # fmt: skip


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["lraspp5", "deeplab21"])
def test_labels_agree_with_torchs_own_argmax_on_real_frames(own, name, backend) -> None:
    path, module = own[name]
    pipeline = _pipeline(path, backend)
    assert pipeline.input_size == OWN_SIZE
    assert pipeline.metadata.class_names == (FIVE if name == "lraspp5" else VOC)
    for rgb in real_frames():
        labels = pipeline(rgb).labels
        expected = torch_labels(module, rgb)
        assert len(np.unique(expected)) > 1  # a frame that tells the classes apart
        agree = float((labels == expected).mean())
        assert agree >= 0.99, f"{name} on {backend}: labels agree on {agree:.2%}"
    info = pipeline.describe()
    assert info["model"] == name and info["output"] == "logits"
    assert info["backend"] == backend and info["weights"] == str(path)


def test_probabilities_and_labels_outputs_give_the_logits_models_labels(own) -> None:
    """Three exports of one network: argmax of probabilities, labels as they come, and the
    confidence a probabilities output gives is the softmax a logits output is turned into."""
    rgb = real_frames(1)[0]
    logits = _pipeline(own["lraspp5"][0], "onnxruntime", confidence=True)(rgb)
    probabilities = _pipeline(own["probabilities"][0], "onnxruntime", confidence=True)(rgb)
    labels = _pipeline(own["labels"][0], "onnxruntime")(rgb)
    np.testing.assert_array_equal(probabilities.labels, logits.labels)
    np.testing.assert_array_equal(labels.labels, logits.labels)
    diff = np.abs(probabilities.confidence.astype(int) - logits.confidence.astype(int))
    assert diff.max() <= 1  # the same probability, rounded to mono8
    assert labels.confidence is None


def test_a_labels_model_refuses_confidence_naming_why(own) -> None:
    from seg_ros.inference.errors import ConfigError

    with pytest.raises(ConfigError, match="outputs labels"):
        _pipeline(own["labels"][0], "onnxruntime", confidence=True)
    with pytest.raises(ConfigError, match=r"min_confidence 0\.5 needs scores"):
        _pipeline(own["labels"][0], "onnxruntime", min_confidence=0.5)


def test_a_bgr_model_is_fed_bgr(own) -> None:
    """The network flips its input back to RGB itself: fed BGR as its description says, its
    labels are the RGB network's; fed RGB (the description wrong), they are not."""
    rgb = real_frames(1)[0]
    expected = _pipeline(own["lraspp5"][0], "onnxruntime")(rgb).labels
    np.testing.assert_array_equal(_pipeline(own["bgr"][0], "onnxruntime")(rgb).labels, expected)
    wrong = own["bgr"][0].with_name("bgr_as_rgb.onnx")
    shutil.copy(own["bgr"][0], wrong)
    describe(wrong, FIVE, input_size=list(OWN_SIZE))
    assert (_pipeline(wrong, "onnxruntime")(rgb).labels != expected).any()


def test_backend_auto_never_picks_torch_and_torch_says_why(own) -> None:
    from seg_ros.inference import Pipeline
    from seg_ros.inference.errors import ConfigError

    pipeline = Pipeline(weights=str(own["lraspp5"][0]))
    assert pipeline.backend_name in ("openvino", "onnxruntime")
    with pytest.raises(ConfigError, match="torch backend runs only seg_ros' own networks"):
        Pipeline(weights=str(own["lraspp5"][0]), backend="torch")


def test_a_fixed_size_onnx_refuses_another_input_size(own) -> None:
    from seg_ros.inference.errors import ConfigError

    with pytest.raises(ConfigError, match="is built for 120x160"):
        _pipeline(own["deeplab21"][0], "onnxruntime", input_size=(240, 320))
    # a dynamic one runs at the size asked
    assert _pipeline(own["lraspp5"][0], "onnxruntime", input_size=(96, 128)).input_size == (96, 128)


def _bad_copy(own, tmp_path: Path, text: str | None, model: str = "lraspp5") -> Path:
    path = tmp_path / f"{model}.onnx"
    shutil.copy(own[model][0], path)
    if text is not None:
        path.with_name(path.name + ".yaml").write_text(text)
    return path


GOOD = "classes: [a, b, c, d, e]\nmean: [0.5, 0.5, 0.5]\nstd: [0.2, 0.2, 0.2]\noutput: logits\n"
MALFORMED = {
    "no description": (None, "has no description lraspp5.onnx.yaml"),
    "not yaml": ("classes: [a, b\n", "not readable YAML"),
    "a list": ("- a\n- b\n", "expected a mapping"),
    "missing classes": ("mean: [0.5, 0.5, 0.5]\nstd: [0.2, 0.2, 0.2]\noutput: logits\n",
                        "key 'classes' is missing"),
    "missing mean": ("classes: [a, b, c, d, e]\nstd: [0.2, 0.2, 0.2]\noutput: logits\n",
                     "key 'mean' is missing"),
    "missing output": ("classes: [a, b, c, d, e]\nmean: [0.5, 0.5, 0.5]\nstd: [1, 1, 1]\n",
                       "key 'output' is missing"),
    "typo": (GOOD + "colour_order: rgb\n", "unknown key 'colour_order'"),
    "wrong output": (GOOD.replace("logits", "scores"), "key 'output' is 'scores'"),
    "0-255 mean": (GOOD.replace("[0.5, 0.5, 0.5]", "[123.7, 116.3, 103.5]"),
                   "key 'mean' must be 3 numbers on the 0-1 scale"),
    "zero std": (GOOD.replace("[0.2, 0.2, 0.2]", "[0.2, 0, 0.2]"), "key 'std'"),
    "bad order": (GOOD + "color_order: hsv\n", "key 'color_order' is 'hsv'"),
    "short palette": (GOOD + "palette: [[1, 2, 3]]\n", "key 'palette'"),
    "bad size": (GOOD + "input_size: [120]\n", "key 'input_size' must be [height, width]"),
    "twice": (GOOD.replace("[a, b, c, d, e]", "[a, b, c, d, a]"), "names a class twice"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_every_malformed_description_is_one_clear_line(own, tmp_path, case) -> None:
    from seg_ros.inference import Pipeline
    from seg_ros.inference.errors import PipelineWeightsError

    text, reason = MALFORMED[case]
    path = _bad_copy(own, tmp_path, text)
    with pytest.raises(PipelineWeightsError, match=reason.replace("[", r"\[")) as e:
        Pipeline(weights=str(path), backend="onnxruntime", input_size=OWN_SIZE)
    assert "\n" not in str(e.value)


def test_an_onnx_the_description_does_not_fit_is_refused(own, tmp_path) -> None:
    from seg_ros.own_model import read_own_model
    from seg_ros.weights import WeightsError

    # a class count the fixed output contradicts
    static = _bad_copy(own, tmp_path, GOOD.replace("e]", "e, f]"), "deeplab21")
    with pytest.raises(WeightsError, match=r"names 6 classes, but deeplab21\.onnx.s output"):
        read_own_model(static)
    # a size its fixed input contradicts
    with pytest.raises(WeightsError, match=r"key 'input_size' is \[240, 320\]"):
        read_own_model(_bad_copy(own, tmp_path, GOOD.replace("e, f]", "e]") + "input_size: "
                                 "[240, 320]\n", "deeplab21"))  # fmt: skip
    # labels said, logits given
    with pytest.raises(WeightsError, match="key 'output' is 'labels'"):
        read_own_model(_bad_copy(own, tmp_path, GOOD.replace("logits", "labels"), "deeplab21"))
    # three outputs
    three = tmp_path / "three.onnx"
    export(_ThreeHeads(), three, dynamic=False, outputs=3)
    describe(three, FIVE)
    with pytest.raises(WeightsError, match=r"has 3 outputs \(out, aux, extra\)"):
        read_own_model(three)
    # a truncated file
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(own["lraspp5"][0].read_bytes()[:5000])
    describe(cut, FIVE)
    with pytest.raises(WeightsError, match="not a readable ONNX model"):
        read_own_model(cut)


def test_a_dynamic_class_count_is_checked_on_the_first_run(own, tmp_path) -> None:
    """lraspp's exported output has a dynamic channel dim (after its Resize): a wrong class
    count is found when the pipeline runs it once at build, not at the first camera frame."""
    from seg_ros.inference import Pipeline
    from seg_ros.inference.errors import PipelineWeightsError

    path = _bad_copy(own, tmp_path, GOOD.replace("e]", "e, f]") + "input_size: [120, 160]\n")
    with pytest.raises(PipelineWeightsError, match=r"classes need N x 6 x H x W"):
        Pipeline(weights=str(path), backend="onnxruntime")


class _ThreeHeads(__import__("torch").nn.Module):
    def forward(self, x):
        return x[:, :1] * 2, x[:, 1:2], x[:, 2:]


def test_seg_export_describe_writes_a_starting_description_and_never_replaces_one(
    own, tmp_path, capsys
) -> None:
    from seg_ros.own_model import read_own_model
    from seg_ros.tools.export import main as seg_export

    path = tmp_path / "mine.onnx"
    shutil.copy(own["lraspp5"][0], path)
    assert seg_export(["--describe", str(path)]) == 0
    out = capsys.readouterr().out
    assert "input image float32 [1, 3, h, w]" in out and "[1, 5, 512, 512]" in out
    written = path.with_name("mine.onnx.yaml")
    text = written.read_text()
    assert "classes: [class_0, class_1, class_2, class_3, class_4]" in text
    meta = read_own_model(path).metadata  # a starting description that already loads
    assert meta.num_classes == 5 and meta.input_size == [512, 512]
    written.write_text(text.replace("class_1", "road"))
    assert seg_export(["--describe", str(path)]) == 0
    assert "exists and fits" in capsys.readouterr().out
    assert "road" in written.read_text()  # the user's edit is kept


def _folder_dataset(root: Path, classes: list[str], frames: list[np.ndarray]) -> Path:
    """A folder dataset of real frames with labels of these classes (a model's own labels:
    the mIoU is then known to be 100)."""
    import cv2

    for sub in ("images", "labels"):
        (root / "val" / sub).mkdir(parents=True)
    for i, (rgb, labels) in enumerate(frames):
        cv2.imwrite(
            str(root / "val" / "images" / f"f{i}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        )
        cv2.imwrite(str(root / "val" / "labels" / f"f{i}.png"), labels)
    (root / "classes.yaml").write_text(json.dumps({"classes": classes}))
    return root


def test_seg_eval_scores_an_own_model_on_a_folder_dataset_of_its_classes(own, tmp_path, capsys):
    from seg_ros.inference.postprocess import resize_labels
    from seg_ros.tools.evaluate import main as seg_eval

    path, module = own["lraspp5"]
    frames = [(rgb, resize_labels(torch_labels(module, rgb), rgb.shape[:2])) for rgb in
              real_frames(2)]  # fmt: skip
    root = _folder_dataset(tmp_path / "mine", FIVE, frames)
    out_json = tmp_path / "eval.json"
    args = [str(path), "--dataset", "folder", "--data-root", str(root), "--json", str(out_json)]
    assert seg_eval([*args, "--backend", "onnxruntime"]) == 0
    result = json.loads(out_json.read_text())
    assert result["model"] == "lraspp5" and result["backend"] == "onnxruntime"
    assert result["miou"] > 0.99, result  # its own labels, up to the resize at label size
    # the same count under other names: refused, naming the first id that differs
    renamed = _folder_dataset(tmp_path / "other", [*FIVE[:2], "bus", *FIVE[3:]], frames)
    assert seg_eval([str(path), "--dataset", "folder", "--data-root", str(renamed)]) == 2
    assert "class id 2 is 'car' for the model but 'bus'" in capsys.readouterr().err


@pytest.mark.skipif(
    not __import__("importlib").util.find_spec("nncf"), reason="nncf (seg_ros[openvino]) missing"
)
def test_int8_of_an_own_model_records_its_accuracy_and_runs(own, tmp_path, capsys) -> None:
    from seg_ros.inference import Pipeline
    from seg_ros.inference.postprocess import resize_labels
    from seg_ros.tools.quantize import main as seg_quantize

    path, module = own["lraspp5"]
    frames = [(rgb, resize_labels(torch_labels(module, rgb), rgb.shape[:2])) for rgb in
              real_frames(3)]  # fmt: skip
    root = _folder_dataset(tmp_path / "mine", FIVE, frames)
    shutil.copytree(root / "val", root / "train")
    output, report = tmp_path / "lraspp5_int8.xml", tmp_path / "int8.json"
    # a validation split of other class names: its accuracy guard would mean nothing
    other = _folder_dataset(tmp_path / "other", [*FIVE[:2], "bus", *FIVE[3:]], frames)
    refused = ["--weights", str(path), "--output", str(output), "--dataset", "folder"]
    assert seg_quantize([*refused, "--data-root", str(other)]) == 2
    assert "class id 2 is 'car' for the model but 'bus'" in capsys.readouterr().err
    assert not output.exists()
    code = seg_quantize([
        "--weights", str(path), "--output", str(output), "--data-root", str(root),
        "--dataset", "folder", "--frames", "3", "--max-drop", "100", "--json", str(report),
    ])  # fmt: skip
    assert code == 0
    figures = json.loads(report.read_text())
    assert float(figures["fp32_val_miou"]) > 99.0  # fp32 scored against its own labels
    int8 = Pipeline(weights=str(path), engine=str(output), precision="int8", backend="openvino")
    info = int8.describe()
    assert info["model"] == "lraspp5" and info["precision"] == "int8"
    assert f"val mIoU {figures['int8_val_miou']}" in info["int8_accuracy"]
    assert "vs onnxruntime" in info["parity"]  # held to the ONNX's own labels
    assert int8(real_frames(1)[0]).labels.shape == real_frames(1)[0].shape[:2]


@pytest.mark.integration  # seg-bench names the machine with lscpu
def test_seg_bench_has_a_row_for_an_own_model(own, tmp_path) -> None:
    from seg_ros.tools.bench import main as seg_bench

    out = tmp_path / "bench.json"
    code = seg_bench([
        "--models", str(own["lraspp5"][0]), "--backends", "onnxruntime", "torch",
        "--input-sizes", "120x160", "--iterations", "2", "--warmup", "1", "--modes", "latency",
        "--json", str(out),
    ])  # fmt: skip
    assert code == 0
    rows = json.loads(out.read_text())["results"]
    ran, torch_row = rows
    assert ran["model"] == "lraspp5" and ran["fps"] > 0 and ran["agreement"] == 1.0
    assert torch_row["status"] == "skipped" and "torch backend runs only" in torch_row["reason"]


def test_seg_bag_eval_scores_an_own_model_on_a_bag_of_its_classes(own, tmp_path, capsys):
    """seg-make-bag from a folder dataset of the model's classes, seg-bag-eval --weights the
    ONNX: its own labels score 100; a bag whose classes are named otherwise is refused."""
    from seg_ros.inference.postprocess import resize_labels
    from seg_ros.tools.bag_eval import main as bag_eval
    from seg_ros.tools.make_bag import main as make_bag

    path, module = own["lraspp5"]
    frames = [(rgb, resize_labels(torch_labels(module, rgb), rgb.shape[:2])) for rgb in
              real_frames(2)]  # fmt: skip
    for name, classes in (("mine", FIVE), ("other", [*FIVE[:2], "bus", *FIVE[3:]])):
        root = _folder_dataset(tmp_path / name, classes, frames)
        assert make_bag([str(tmp_path / f"{name}_bag"), "--dataset", "folder",
                         "--data-root", str(root)]) == 0  # fmt: skip
    out = tmp_path / "report"
    args = ["--weights", str(path), "--backend", "onnxruntime", "--samples", "0", "--out"]
    assert bag_eval([str(tmp_path / "mine_bag"), *args, str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["accuracy"]["miou"] > 0.99, report["accuracy"]
    assert bag_eval([str(tmp_path / "other_bag"), *args, str(tmp_path / "r2")]) == 2
    assert "class id 2 is 'car' for the model but 'bus'" in capsys.readouterr().err


def test_tensorrt_builds_its_engine_from_the_users_onnx(own, monkeypatch, tmp_path) -> None:
    """No GPU here: up to the builder call, the TensorRT backend is handed the user's own
    file (not a seg_ros export), at the description's size, with its metadata for the
    sidecar. A contract with stand-ins, like test_tensorrt_contract's, not proof it runs."""
    from test_tensorrt_contract import StopBuildError, stop_at_the_builder

    from seg_ros.inference import Pipeline

    seen = stop_at_the_builder(monkeypatch)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(StopBuildError):
        Pipeline(weights=str(own["lraspp5"][0]), backend="tensorrt", device="cuda")
    assert seen["onnx"] == own["lraspp5"][0] and seen["size"] == OWN_SIZE
    assert json.loads(seen["metadata"]["class_names"]) == FIVE
    assert seen["metadata"]["output"] == "logits" and seen["metadata"]["model"] == "lraspp5"


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_output_at_a_stride_is_resized_to_the_network_size(own, backend) -> None:
    """A head that answers at 1/4 of the input (30x40 for 120x160): labels, colour, overlay
    and confidence come out at the sizes asked, each label the nearest low-res one."""
    from seg_ros.inference.postprocess import resize_labels

    path, module = own["stride4"]
    rgb = real_frames(1)[0]
    result = _pipeline(path, backend, confidence=True)(rgb)
    assert result.labels.shape == result.confidence.shape == OWN_SIZE
    assert result.overlay.shape == (*OWN_SIZE, 3)
    low = torch_labels(module, rgb)
    assert low.shape == (OWN_SIZE[0] // 4, OWN_SIZE[1] // 4)
    assert (result.labels == resize_labels(low, OWN_SIZE)).mean() >= 0.99
    full = _pipeline(path, backend, output_resolution="input")(rgb)
    assert full.labels.shape == rgb.shape[:2]


def test_a_half_precision_input_is_refused_naming_the_dtype(own, tmp_path) -> None:
    import onnx

    from seg_ros.own_model import read_own_model
    from seg_ros.weights import WeightsError

    proto = onnx.load(str(own["lraspp5"][0]))
    proto.graph.input[0].type.tensor_type.elem_type = onnx.TensorProto.FLOAT16
    path = tmp_path / "half.onnx"
    onnx.save(proto, str(path))
    describe(path, FIVE, input_size=list(OWN_SIZE))
    with pytest.raises(WeightsError, match="is not float32, which seg_ros feeds"):
        read_own_model(path)
