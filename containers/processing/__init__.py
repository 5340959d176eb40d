"""PrepareData: Ground Truth manifests and images -> TFRecords, label map and data report (prepare_data.py)."""
