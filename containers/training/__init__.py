"""Train: EfficientDet with the TF2 Object Detection API, in SageMaker's training contract (train.py)."""
