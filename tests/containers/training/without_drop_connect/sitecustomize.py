"""Loaded at start by a Python that has this folder on PYTHONPATH (site.py imports `sitecustomize`): the training
jobs of the equivalence test. It turns off EfficientNet's drop connect, which drops each image's residual branches
at random (official.legacy.image_classification.efficientnet, `drop_connect_rate`): a batch of 2 on one worker and
two batches of 1 draw different masks, so with it on the losses of the two runs could not be compared step by step.
The patch is applied when the OD API imports the module, and only then."""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys

MODULE = "official.legacy.image_classification.efficientnet.efficientnet_model"


class _WithoutDropConnect(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != MODULE:
            return None
        sys.meta_path.remove(self)  # the module's own spec, found by the other finders
        spec = importlib.util.find_spec(name)
        load = spec.loader.exec_module

        def exec_module(module):
            load(module)
            module.MODEL_CONFIGS = {key: config.replace(drop_connect_rate=0.0) for key, config in module.MODEL_CONFIGS.items()}

        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, _WithoutDropConnect())
