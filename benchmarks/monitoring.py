#!/usr/bin/env python3
"""What monitoring a window costs against serving it, on the same photos, in one run.

    .venv/bin/python benchmarks/monitoring.py [--model DIR] [--size 512] [--copies 2] [--repeats 3] [--baseline-images 5000]

The model: an exported model folder (--model, e.g. `.cardamage/endpoints/car-damage-endpoint/v1` after
`make run`), else EfficientDet-D0 trained one step from scratch on the bundled sample and exported as training
exports it (benchmarks/inference_latency.py builds it; inference cost does not depend on training). The
photos: the bundled sample's JPEGs, --copies times. Two passes, each timed best of --repeats:
- serving: each photo through the endpoint's handler and model (LocalEndpoint.invoke, one at a time), as the
  endpoint answers it; the answers become capture records in the local endpoint's format;
- monitoring: the monitor program (containers/monitoring/monitor.py main) over those capture files, against
  baselines made from the same photos and answers, repeated to --baseline-images records (a validation set's
  size: what the monitor reads, tests against and ranks each photo in grows with it), writing monitor.json,
  atypical.json and report.html.
The monitor runs on the window and on its first half: the difference is its cost per photo, the rest its cost per
window whatever the size (the report's plots). Reported: serving's cost per photo, the monitor's per photo and
per window, and monitoring's time as a share of serving's, for this window and for a large one, where the
per-window cost vanishes (goal: under 5%). Both run on
this machine's CPU; on a GPU endpoint serving is faster and the share larger: the command to measure that is
this one on a GPU instance with the GPU build of TensorFlow.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from inference_latency import SAMPLE, build_models  # noqa: E402
from timing import best  # noqa: E402

from containers.inference.local import LocalEndpoint  # noqa: E402
from containers.monitoring import monitor, statistics  # noqa: E402
from containers.monitoring.captures import decode  # noqa: E402
from pipelines.local.capture import capture_line  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="an exported model folder (default: build one)")
    parser.add_argument("--size", type=int, default=512, help="the built model's input size (default: %(default)s, D0's)")
    parser.add_argument("--copies", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline-images", type=int, default=5000, help="records in the baselines (default: %(default)s)")
    args = parser.parse_args()
    photos = [path.read_bytes() for path in sorted(SAMPLE.joinpath("images").rglob("*.jpg"))] * args.copies
    with tempfile.TemporaryDirectory(prefix="monitoring-bench-") as tmp:
        work = Path(tmp)
        model = args.model or build_models(work / "build", args.size)[0]
        endpoint = LocalEndpoint(model)
        answers: list[bytes] = []

        def serve() -> None:
            answers.clear()
            for photo in photos:
                status, body, _ = endpoint.invoke(photo, "image/jpeg")
                if status != 200:
                    sys.exit(f"the endpoint answered {status}: {body[:200]!r}")
                answers.append(body)

        endpoint.invoke(photos[0], "image/jpeg")  # the model's first call loads and traces it: not part of serving
        serving = best(args.repeats, serve)
        start = datetime(2026, 12, 7, 12, tzinfo=UTC)
        lines = [
            json.dumps(capture_line(photo, "image/jpeg", answer, "application/json", when=start + timedelta(seconds=i), event_id=str(uuid.uuid4())))
            for i, (photo, answer) in enumerate(zip(photos, answers, strict=True))
        ]
        baselines = work / "baselines"
        baselines.mkdir()
        captured = [decode("bench", i, line) for i, line in enumerate(lines, 1)]
        records = -(-args.baseline_images // len(captured))  # each photo's statistics this many times, then cut
        measured = [statistics.input_statistics(photo.data) for photo in captured] * records
        answered = [statistics.output_statistics(p.detections, p.width, p.height) for p in captured] * records
        inputs = statistics.summarize(measured[: args.baseline_images], "input")
        outputs = statistics.summarize(answered[: args.baseline_images], "output")
        (baselines / statistics.DATA_BASELINE).write_text(json.dumps(inputs))
        (baselines / statistics.MODEL_BASELINE).write_text(json.dumps(outputs))
        # The window, and its first half: the difference is what each photo costs, the rest what a window costs
        # whatever its size (the report's plots).
        timed = {}
        for name, count in (("half", len(lines) // 2), ("all", len(lines))):
            hour = work / name / "car-damage-endpoint" / "AllTraffic" / "2026" / "12" / "07" / "12"
            hour.mkdir(parents=True)
            (hour / "00-00-000-benchmark.jsonl").write_text("\n".join(lines[:count]) + "\n")
            arguments = ["--captures", str(work / name), "--baseline", str(baselines), "--output", str(work / f"out-{name}"), "--no-progress"]
            with contextlib.redirect_stdout(io.StringIO()):
                if not timed:  # the first run imports matplotlib and builds its font cache: not part of a window's cost
                    monitor.main(arguments)
                timed[name] = (count, best(args.repeats, lambda arguments=arguments: monitor.main(arguments)))
    (half, half_time), (count, monitoring) = timed["half"], timed["all"]
    per_photo = (monitoring - half_time) / (count - half)
    fixed = monitoring - count * per_photo
    built = "given" if args.model else f"D0 at {args.size}"
    print(f"photos         {count} (the sample's {count // args.copies}, {args.copies} times); model {built}; baselines of {args.baseline_images}")
    serving_photo = serving / count
    print(f"serving        {serving:.2f} s, {1000 * serving_photo:.1f} ms a photo (handler and model, one at a time)")
    print(f"monitoring     {monitoring:.2f} s for the window: {1000 * per_photo:.1f} ms a photo and {fixed:.2f} s a window (the report's plots)")
    share, large = 100 * monitoring / serving, 100 * per_photo / serving_photo
    print(f"monitoring / serving: {share:.1f}% of this window; {large:.1f}% for a large one (goal: under 5%)")


if __name__ == "__main__":
    main()
