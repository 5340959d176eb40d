"""The OD API compatibility module's export switch: a SavedModel of the exporter's module keeps its signatures and
leaves out tf-keras's traces of every layer's call."""

from __future__ import annotations

from containers.common import odapi


def functions_in(saved_model) -> int:
    from tensorflow.core.protobuf import saved_model_pb2

    document = saved_model_pb2.SavedModel()
    document.ParseFromString((saved_model / "saved_model.pb").read_bytes())
    return len(document.meta_graphs[0].graph_def.library.function)


def test_a_module_holding_a_keras_model_is_saved_with_its_signature_and_without_layer_traces(tmp_path):
    odapi.patch()
    import tensorflow as tf
    from tf_keras.src.saving.legacy.saved_model import utils as keras_saved_model

    class Module(tf.Module):
        def __init__(self):
            super().__init__()
            self.model = tf.keras.Sequential([tf.keras.layers.Dense(3, input_shape=(4,)), tf.keras.layers.Dense(2)])

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32)])
        def __call__(self, x):
            return {"y": self.model(x)}

    module = Module()
    signature = module.__call__.get_concrete_function()
    x = tf.ones([1, 4])
    tf.saved_model.save(module, str(tmp_path / "traced"), signatures={"serving_default": signature})
    with odapi.without_keras_traces() as skipped:
        assert skipped is True and keras_saved_model.should_save_traces() is False
        tf.saved_model.save(module, str(tmp_path / "untraced"), signatures={"serving_default": signature})
    assert keras_saved_model.should_save_traces() is True  # only inside the block
    for name in ("traced", "untraced"):
        loaded = tf.saved_model.load(str(tmp_path / name))
        assert loaded.signatures["serving_default"](x)["y"].numpy().tolist() == module(x)["y"].numpy().tolist(), name
    assert functions_in(tmp_path / "untraced") < functions_in(tmp_path / "traced")
