"""Importing the TensorFlow 2 Object Detection API on current TensorFlow.

The OD API comes from the PyPI sdist `tf-object-detection-api==0.1` (upstream research/ of late 2022). On
TensorFlow 2.20 it needs four fixes before its modules are imported (measured; see
shared/notes/tensorflow-object-detection.md):
- tf-slim 1.1.0 calls `control_flow_ops.case/cond/while_loop`, gone from that module;
- `visualization_utils` calls `FreeTypeFont.getsize`, removed in Pillow 10;
- `inputs.py` imports `tf.compat.v1.estimator`, gone since TF 2.16 (only its ModeKeys are used);
- `model_builder` imports `tensorflow_io` for DeepMAC, which we neither use nor install.
`TF_USE_LEGACY_KERAS=1` must be set before TensorFlow is imported: the OD API is written for Keras 2.
"""

from __future__ import annotations

import os
import sys
import types

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
