"""Builds the car damage detection pipeline from `pipeline.yaml`, and hosts the `cardamage` CLI."""
