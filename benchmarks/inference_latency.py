#!/usr/bin/env python3
"""Per-image latency of the inference path: the binary payload against the original notebooks' JSON
pixel list, on the same weights, with payload sizes.

    .venv/bin/python benchmarks/inference_latency.py [--size 512] [--images 20] [--repeats 3] [--work DIR]

A model is trained for one step from scratch on the bundled sample (inference cost does not depend on
training) and exported twice from the same checkpoint:
- as the training program exports it (encoded-image input): the request is the JPEG's bytes, which
  go through the endpoint handler (image check, base64 JSON for TF Serving), TF Serving's REST predict
  (emulated in-process by LocalEndpoint) and the output handler;
- with the OD API's `image_tensor` input, as the original notebooks served it: the client decodes the
  image and sends `{"instances": [pixels]}` as JSON; the server parses it into a uint8 tensor, runs the
  model and returns the same detections through the same output handler.
Both return the four detection outputs only. Reported: median and 90th percentile latency per image
over --images sample images (after a warm-up), bytes sent per image, and the ratio. TF Serving parses
JSON in C++, this emulation in Python, so the absolute pixel-list figure is pessimistic; the payload
sizes are exact.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from containers.inference import inference as handler  # noqa: E402
from containers.inference.local import LocalEndpoint  # noqa: E402
from containers.training.hyperparameters import parse_hyperparameters  # noqa: E402
from containers.training.train import SERVING_OUTPUTS, Paths, export, train, write_pipeline_config  # noqa: E402
from pipelines.local.jobs import LOCAL_WHEELS  # noqa: E402

os.environ.setdefault("SERVING_WHEELS", str(LOCAL_WHEELS))  # the export's code/lib, as make setup downloaded it (batch_predict.py too)

SAMPLE = ROOT / "data" / "sample"


def build_models(work: Path, size: int) -> tuple[Path, Path]:
    """Train one step, then export the encoded-image model and the image_tensor model of that checkpoint."""
    from training_step_time import prepare_sample  # this folder, beside this script

    prepared = prepare_sample(work)
    hp = parse_hyperparameters({"image_size": str(size), "batch_size": "1", "num_steps": "1"})
    paths = Paths(prepared / "train", prepared / "validation", prepared / "label_map.pbtxt", None, work / "model", work / "ckpt", work / "tb")
    classes = write_pipeline_config(hp, paths)
    final = train(hp, paths, log=lambda _line: None)
    export(hp, paths, classes, final, log=lambda _line: None)
    return paths.model_dir, export_image_tensor(paths, work / "model-image-tensor")


def export_image_tensor(paths: Paths, folder: Path) -> Path:
    """The same checkpoint with the OD API's image_tensor input (a [1, H, W, 3] uint8 array)."""
    import tensorflow as tf
    from object_detection import exporter_lib_v2
    from object_detection.builders import model_builder
    from object_detection.utils import config_util

    config = config_util.get_configs_from_pipeline_file(str(paths.checkpoints / "pipeline.config"))
    model = model_builder.build(config["model"], is_training=False)
    restored = tf.train.Checkpoint(model=model).restore(tf.train.latest_checkpoint(str(paths.checkpoints))).expect_partial()
    module = exporter_lib_v2.DetectionFromImageModule(model)
    module.__call__.get_concrete_function()
    restored.assert_existing_objects_matched()

    @tf.function(input_signature=[tf.TensorSpec(shape=[1, None, None, 3], dtype=tf.uint8, name="input_tensor")])
    def serve(input_tensor):
        outputs = module.__call__(input_tensor)  # set per instance by this module, so module(...) does not reach it
        return {name: outputs[name] for name in SERVING_OUTPUTS}

    module.serve = serve
    tf.saved_model.save(module, str(folder / "1"), signatures={"serving_default": serve.get_concrete_function()})
    return folder


class PixelListServer:
    """The notebooks' endpoint: JSON pixel lists parsed into a uint8 tensor, the model, the same output handler."""

    def __init__(self, folder: Path, classes: dict[int, str]):
        import tensorflow as tf

        self._tf = tf
        self._loaded = tf.saved_model.load(str(folder / "1"))
        self._signature = self._loaded.signatures["serving_default"]
        self._classes = classes

    def invoke(self, body: bytes) -> bytes:
        instances = json.loads(body)["instances"]
        pixels = self._tf.constant(np.asarray(instances, dtype=np.uint8))
        outputs = {name: value.numpy() for name, value in self._signature(input_tensor=pixels).items()}
        reply = json.dumps({"predictions": [{name: array[0].tolist() for name, array in outputs.items()}]}).encode()
        height, width = pixels.shape[1:3]
        predictions = handler.parse_response(reply, [(int(width), int(height))], handler.Options(), self._classes)
        return json.dumps({"predictions": predictions}).encode()


def notebook_payload(data: bytes) -> bytes:
    """What the original notebooks' client sent: the decoded image as a JSON list of pixel values."""
    pixels = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    return json.dumps({"instances": [pixels.tolist()]}).encode()


def timed(fn, items, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        for item in items:
            start = time.perf_counter()
            fn(item)
            times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="model input size (default: %(default)s, EfficientDet-D0's)")
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", type=Path, default=None, help="keep the trained models here (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="inference-bench-") as tmp:
        work = args.work or Path(tmp)
        encoded_model, pixel_model = build_models(work, args.size)
        images = [p.read_bytes() for p in sorted(SAMPLE.joinpath("images").rglob("*.jpg"))[: args.images]]
        endpoint = LocalEndpoint(encoded_model)
        pixels = PixelListServer(pixel_model, endpoint.classes)

        def binary(data: bytes) -> None:
            status, _, _ = endpoint.invoke(data, "image/jpeg")
            assert status == 200

        def pixel_list(data: bytes) -> None:
            pixels.invoke(notebook_payload(data))

        for fn in (binary, pixel_list):  # warm-up: graph tracing, caches
            timed(fn, images[:3], 1)
        results = {"binary JPEG (this endpoint)": (timed(binary, images, args.repeats), statistics.mean(map(len, images)))}
        payloads = [notebook_payload(data) for data in images]
        results["JSON pixel list (notebooks)"] = (timed(pixel_list, images, args.repeats), statistics.mean(map(len, payloads)))
        print(f"EfficientDet-D0 at {args.size}px, {len(images)} sample images (640x640 JPEG) x {args.repeats}, this machine's CPU")
        print(f"{'payload':30} {'median ms':>10} {'p90 ms':>8} {'bytes/image':>12}")
        for name, (times, size) in results.items():
            p90 = statistics.quantiles(times, n=10)[-1]
            print(f"{name:30} {statistics.median(times) * 1e3:10.1f} {p90 * 1e3:8.1f} {size:12,.0f}")
        (binary_times, binary_size), (pixel_times, pixel_size) = results.values()
        latency = statistics.median(pixel_times) / statistics.median(binary_times)
        print(f"pixel list / binary: latency {latency:.2f}x, payload {pixel_size / binary_size:.0f}x")


if __name__ == "__main__":
    main()
