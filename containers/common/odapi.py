"""Importing the TensorFlow 2 Object Detection API on current TensorFlow.

The OD API comes from the PyPI sdist `tf-object-detection-api==0.1` (upstream research/ of late 2022). On
TensorFlow 2.20 it needs four fixes before its modules are imported (measured; see
shared/notes/tensorflow-object-detection.md):
- tf-slim 1.1.0 calls `control_flow_ops.case/cond/while_loop`, gone from that module;
- `visualization_utils` calls `FreeTypeFont.getsize`, removed in Pillow 10;
- `inputs.py` imports `tf.compat.v1.estimator`, gone since TF 2.16 (only its ModeKeys are used);
- `model_builder` imports `tensorflow_io` for DeepMAC, which we neither use nor install.
`TF_USE_LEGACY_KERAS=1` must be set before TensorFlow is imported: the OD API is written for Keras 2.
`without_keras_traces()` makes the SavedModel export three times faster (below).
"""

from __future__ import annotations

import contextlib
import os
import sys
import types
from collections.abc import Iterator

_PATCHED = False


def patch() -> None:
    """Apply the fixes (idempotent). Call before importing any `object_detection` module."""
    global _PATCHED  # noqa: PLW0603 - a module-level flag is what makes patch() idempotent
    if _PATCHED:
        return
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules and os.environ["TF_USE_LEGACY_KERAS"] != "1":
        raise RuntimeError("TF_USE_LEGACY_KERAS=1 must be set before TensorFlow is imported (the OD API needs Keras 2)")
    import tensorflow as tf
    from tensorflow.python.ops import control_flow_ops

    for name in ("case", "cond", "while_loop"):
        if not hasattr(control_flow_ops, name):
            setattr(control_flow_ops, name, getattr(tf, name))

    from PIL import ImageFont

    if not hasattr(ImageFont.FreeTypeFont, "getsize"):

        def getsize(font, text, *args, **kwargs):
            left, top, right, bottom = font.getbbox(text, *args, **kwargs)
            return right - left, bottom - top

        ImageFont.FreeTypeFont.getsize = getsize

    if not hasattr(tf.compat.v1, "estimator"):
        estimator = types.ModuleType("tensorflow.compat.v1.estimator")

        class ModeKeys:
            TRAIN = "train"
            EVAL = "eval"
            PREDICT = "infer"

        estimator.ModeKeys = ModeKeys
        tf.compat.v1.estimator = estimator

    if "tensorflow_io" not in sys.modules:
        try:
            import tensorflow_io  # noqa: F401
        except ImportError:
            sys.modules["tensorflow_io"] = types.ModuleType("tensorflow_io")
    _PATCHED = True


@contextlib.contextmanager
def without_keras_traces() -> Iterator[bool]:
    """A `tf.saved_model.save` of the exporter's module without tf-keras's trace of every layer's call function.

    The module holds the OD API's Keras model, and tf-keras serializes each of its layers for Keras's own loader
    (`tf.keras.models.load_model`), tracing their calls again; TF Serving, the endpoint and Evaluate read only the
    signatures. Measured here on the trained D0: the save takes 9 s instead of 26 s, loading it 3 s instead of 9 s,
    and the SavedModel is 28 MB instead of 35 MB, with the same detections. The switch is tf-keras's own
    (`save_traces`, what `model.save(save_traces=False)` sets), reached through its private module; should a
    tf-keras release move it, the save traces as before (yields False) rather than fail."""
    try:
        from tf_keras.src.saving.legacy.saved_model import utils as keras_saved_model
    except ImportError:
        yield False
        return
    with keras_saved_model.keras_option_scope(save_traces=False, in_tf_saved_model_scope=True):
        yield True
