"""Evaluate: the pipeline's Evaluate step, COCO metrics and pictures of an exported detector on the validation records."""
