"""Inference: the endpoint's request handler (inference.py, shipped in model.tar.gz as code/) and a local stand-in for the endpoint."""
