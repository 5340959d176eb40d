"""Rendering the OD API `pipeline.config` of an EfficientDet run from its hyperparameters.

The model section follows the TF2 model zoo's `ssd_efficientdet_d{0-7}` configs (values in
hyperparameters.VARIANTS); the run-specific parts come from the job: the number of classes from the
label map, the input size, the batch size, the step count, a cosine schedule whose warm-up and decay
span this run's steps, the augmentation, and an optional COCO checkpoint to fine-tune from. Scores
are SIGMOID with focal loss, as EfficientDet was trained (the original notebooks' SOFTMAX inflated them).
"""

from __future__ import annotations

from pathlib import Path

from .hyperparameters import VARIANTS, Hyperparameters

_CONV = """
        force_use_bias: true
        activation: SWISH
        regularizer {{ l2_regularizer {{ weight: 0.00004 }} }}
        initializer {{ {initializer} }}
        batch_norm {{ scale: true decay: 0.99 epsilon: 0.001 }}"""


def render_pipeline_config(
    hp: Hyperparameters,
    *,
    num_classes: int,
    label_map: Path,
    train_pattern: str,
    validation_pattern: str,
    fine_tune_checkpoint: str | None = None,
) -> str:
    """The pipeline.config text for this run (the OD API's TrainEvalPipelineConfig text format)."""
    variant = VARIANTS[hp.model]
    size = hp.input_size
    combine = f"\n        combine_method: '{variant['combine']}'" if variant["combine"] else ""
    augmentation = ""
    if hp.horizontal_flip:
        augmentation += "\n  data_augmentation_options { random_horizontal_flip { } }"
    if hp.scale_crop:
        augmentation += (
            "\n  data_augmentation_options { random_scale_crop_and_pad_to_square {"
            f" output_size: {size} scale_min: {hp.scale_min} scale_max: {hp.scale_max} }} }}"
        )
    fine_tune = (
        f'\n  fine_tune_checkpoint: "{fine_tune_checkpoint}"\n  fine_tune_checkpoint_version: V2\n  fine_tune_checkpoint_type: "detection"'
        if fine_tune_checkpoint
        else ""
    )
    return f"""# Rendered by containers/training/pipeline_config.py for {hp.model} at {size}x{size}.
model {{
  ssd {{
    num_classes: {num_classes}
    inplace_batchnorm_update: true
    freeze_batchnorm: false
    add_background_class: false
    encode_background_as_zeros: true
    box_coder {{ faster_rcnn_box_coder {{ y_scale: 10.0 x_scale: 10.0 height_scale: 5.0 width_scale: 5.0 }} }}
    matcher {{
      argmax_matcher {{
        matched_threshold: 0.5
        unmatched_threshold: 0.5
        ignore_thresholds: false
        negatives_lower_than_unmatched: true
        force_match_for_each_row: true
        use_matmul_gather: true
      }}
    }}
    similarity_calculator {{ iou_similarity {{ }} }}
    anchor_generator {{
      multiscale_anchor_generator {{ min_level: 3 max_level: 7 anchor_scale: 4.0 aspect_ratios: [1.0, 2.0, 0.5] scales_per_octave: 3 }}
    }}
    image_resizer {{ keep_aspect_ratio_resizer {{ min_dimension: {size} max_dimension: {size} pad_to_max_dimension: true }} }}
    box_predictor {{
      weight_shared_convolutional_box_predictor {{
        depth: {variant["filters"]}
        class_prediction_bias_init: -4.6
        conv_hyperparams {{{_CONV.format(initializer="random_normal_initializer { stddev: 0.01 mean: 0.0 }")}
        }}
        num_layers_before_predictor: {variant["predictor_layers"]}
        kernel_size: 3
        use_depthwise: true
      }}
    }}
    feature_extractor {{
      type: 'ssd_efficientnet-{variant["backbone"]}_bifpn_keras'
      bifpn {{
        min_level: 3
        max_level: 7
        num_iterations: {variant["bifpn_iterations"]}
        num_filters: {variant["filters"]}{combine}
      }}
      conv_hyperparams {{{_CONV.format(initializer="truncated_normal_initializer { stddev: 0.03 mean: 0.0 }")}
      }}
    }}
    loss {{
      classification_loss {{ weighted_sigmoid_focal {{ alpha: 0.25 gamma: 1.5 }} }}
      localization_loss {{ weighted_smooth_l1 {{ }} }}
      classification_weight: 1.0
      localization_weight: 1.0
    }}
    normalize_loss_by_num_matches: true
    normalize_loc_loss_by_codesize: true
    post_processing {{
      batch_non_max_suppression {{
        score_threshold: 1e-8
        iou_threshold: 0.5
        max_detections_per_class: 100
        max_total_detections: 100
      }}
      score_converter: SIGMOID
    }}
  }}
}}

train_config {{
  batch_size: {hp.batch_size}
  num_steps: {hp.num_steps}
  max_number_of_boxes: {hp.max_boxes}
  unpad_groundtruth_tensors: false
  use_bfloat16: false{fine_tune}{augmentation}
  optimizer {{
    momentum_optimizer {{
      learning_rate {{
        cosine_decay_learning_rate {{
          learning_rate_base: {hp.peak_learning_rate!r}
          total_steps: {hp.num_steps}
          warmup_learning_rate: {hp.warmup_start!r}
          warmup_steps: {hp.warmup_steps}
        }}
      }}
      momentum_optimizer_value: {hp.momentum}
    }}
    use_moving_average: false
  }}
}}

train_input_reader {{
  label_map_path: "{label_map}"
  tf_record_input_reader {{ input_path: "{train_pattern}" }}
}}

eval_config {{
  metrics_set: "coco_detection_metrics"
  use_moving_averages: false
  batch_size: 1
}}

eval_input_reader {{
  label_map_path: "{label_map}"
  shuffle: false
  num_epochs: 1
  tf_record_input_reader {{ input_path: "{validation_pattern}" }}
}}
"""
