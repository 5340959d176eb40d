"""The training log's fixed format, and the regexes SageMaker metric definitions use to read it.

Every `log_every` steps the training program prints one line such as

    train step=120/2000 loss=0.8123 classification_loss=0.5012 localization_loss=0.1904
        regularization_loss=0.1207 learning_rate=0.004212 step_time=0.712s images_per_sec=11.24

(on one line).
The pipeline's Training step passes METRIC_DEFINITIONS to SageMaker, which scrapes the job's log with
them into CloudWatch metrics (train:loss, ...). Keep the format and the regexes together here.
"""

from __future__ import annotations

_NUMBER = r"([-+]?(?:[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?|nan|inf))"

METRIC_DEFINITIONS = [
    {"Name": "train:loss", "Regex": rf"train step=\d+/\d+ loss={_NUMBER}"},
    {"Name": "train:classification_loss", "Regex": rf" classification_loss={_NUMBER}"},
    {"Name": "train:localization_loss", "Regex": rf" localization_loss={_NUMBER}"},
    {"Name": "train:regularization_loss", "Regex": rf" regularization_loss={_NUMBER}"},
    {"Name": "train:learning_rate", "Regex": rf" learning_rate={_NUMBER}"},
    {"Name": "train:step_time", "Regex": rf" step_time={_NUMBER}s"},
    {"Name": "train:images_per_sec", "Regex": rf" images_per_sec={_NUMBER}"},
]


def format_log_line(step: int, total: int, losses: dict[str, float], learning_rate: float, step_time: float, batch_size: int) -> str:
    """One progress line in the fixed format. `losses` uses the OD API's names ("Loss/total_loss", ...)."""

    def value(name: str) -> str:
        return f"{losses.get(f'Loss/{name}', float('nan')):.4f}"

    rate = batch_size / step_time if step_time > 0 else float("nan")
    return (
        f"train step={step}/{total} loss={value('total_loss')} classification_loss={value('classification_loss')} "
        f"localization_loss={value('localization_loss')} regularization_loss={value('regularization_loss')} "
        f"learning_rate={learning_rate:.6g} step_time={step_time:.3f}s images_per_sec={rate:.2f}"
    )
