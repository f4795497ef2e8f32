"""Shipped demo checkpoints (data package): ``registry.yaml`` and safetensors files."""
