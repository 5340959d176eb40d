"""The local engine: the pipeline definition, run on this machine with no AWS account and no Docker."""
