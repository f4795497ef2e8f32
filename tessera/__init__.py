"""Tessera: attention-based task models on one block library with Triton kernels."""

__version__ = "0.1.0"
